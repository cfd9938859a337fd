package noise

import (
	"cmp"
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/tsdb"

	"github.com/promgate/promgate/detect"
)

// Weeks is how many weeks the generator writes; the last one is
// evaluated.
const Weeks = 3

const week = 7 * 24 * time.Hour

// Result is one detector's row of the noise table.
type Result struct {
	ID       string
	Severity string
	// FalseAlerts counts alerts (runs of at least for:) on the benign week.
	FalseAlerts int
	// Detected reports whether the injected attack raised an alert.
	Detected bool
	// TimeToDetect is from the start of the injected attack to the alert.
	TimeToDetect time.Duration
	// AttackAt is where the attack started, from the evaluated week's start.
	AttackAt time.Duration
}

type noiseKind int

const (
	kindCounter noiseKind = iota
	kindGauge
	kindConstant
	// kindTimestamp is a Unix time (a creation or expiry time): it keeps
	// its age relative to the evaluation time as the world's clock runs.
	kindTimestamp
)

// Persist is how long an injected attack goes on after the end of its
// scenario, holding its last rate or trend: an attacker does not stop when
// the synthetic data does.
const Persist = 6 * time.Hour

func isTimestamp(name string) bool {
	return strings.HasSuffix(name, "_timestamp_seconds") || strings.HasSuffix(name, "_created")
}

type noiseSeries struct {
	lbls  labels.Labels
	kind  noiseKind
	rate  float64 // counters: increase per minute
	level float64 // gauges: mean level
	eval  int     // timestamps: the scenario minute at which level holds
	seed  uint64
}

// weekTime is a minute of the generated world: 0 is a Monday, 00:00.
func daily(m int) float64 {
	hour := float64(m%1440) / 60
	return 1 + 0.5*math.Sin(2*math.Pi*(hour-9)/24)
}

func seasonal(m int) float64 {
	f := daily(m)
	day := (m / 1440) % 7
	if day >= 5 {
		f *= 0.6 // weekend
	}
	if m/int(week.Minutes()) == Weeks-1 && day == 3 {
		f *= 0.4 // a holiday, in the evaluated week only
	}
	if m%1440 >= 120 && m%1440 < 150 {
		f *= 3 // the nightly batch job, 02:00-02:30
	}
	return f
}

// deploy reports whether minute m is a deploy (Tuesday 10:00, Friday 14:00),
// when counters restart from zero.
func deploy(m int) bool {
	inWeek := m % int(week.Minutes())
	return inWeek == 1*1440+600 || inWeek == 4*1440+840
}

// gap reports whether minute m falls in a scrape gap.
func gap(m int) bool {
	inWeek := m % int(week.Minutes())
	switch {
	case inWeek >= 720 && inWeek < 724: // Monday 12:00, 4 minutes
	case inWeek >= 2*1440+1110 && inWeek < 2*1440+1113: // Wednesday 18:30
	case inWeek >= 5*1440+300 && inWeek < 5*1440+310: // Saturday 05:00, 10 minutes
	default:
		return false
	}
	return true
}

func classify(in detect.Series, step time.Duration, seed uint64) (noiseSeries, error) {
	lbls, samples, err := in.Samples(step)
	if err != nil {
		return noiseSeries{}, err
	}
	ns := noiseSeries{lbls: lbls, seed: seed}
	if len(samples) == 0 {
		return ns, fmt.Errorf("series %s has no samples", in.Series)
	}
	name := lbls.Get(model.MetricNameLabel)
	first, last := samples[0], samples[len(samples)-1]
	binary := true
	for _, s := range samples {
		if s.Value != 0 && s.Value != 1 {
			binary = false
		}
	}
	switch {
	case isTimestamp(name):
		ns.kind = kindTimestamp
		ns.level = last.Value
		ns.eval = int(last.Offset.Minutes())
	case strings.HasSuffix(name, "_total") || strings.HasSuffix(name, "_bucket") || strings.HasSuffix(name, "_count") || strings.HasSuffix(name, "_sum"):
		ns.kind = kindCounter
		if d := (last.Offset - first.Offset).Minutes(); d > 0 {
			ns.rate = (last.Value - first.Value) / d
		}
	case binary || strings.HasSuffix(name, "_seconds") || strings.HasSuffix(name, "_info"):
		ns.kind = kindConstant
		ns.level = last.Value
	default:
		ns.kind = kindGauge
		ns.level = last.Value
	}
	return ns, nil
}

type noisePoint struct {
	lbls labels.Labels
	t    int64 // ms
	v    float64
}

// generate writes Weeks of benign samples for ss, plus the extra
// increments of an injected attack (by series, indexed by minute).
func generate(ss []noiseSeries, extra map[string]map[int]float64, replace map[string]map[int]float64) []noisePoint {
	minutes := Weeks * int(week.Minutes())
	var out []noisePoint
	for _, s := range ss {
		rng := rand.New(rand.NewPCG(s.seed, 0x5eed)) //nolint:gosec // G404: a deterministic, seeded traffic generator, not a secret
		key := s.lbls.String()
		v := 0.0
		added := 0.0
		// A replaced series takes the attack's values over the whole
		// attack, each held until the attack's next sample.
		repFrom, repTo := math.MaxInt, -1
		for m := range replace[key] {
			repFrom, repTo = min(repFrom, m), max(repTo, m)
		}
		held := math.NaN()
		for m := 0; m <= minutes; m++ {
			noise := 1 + 0.15*rng.NormFloat64()
			switch s.kind {
			case kindCounter:
				if deploy(m) {
					v, added = 0, 0
				} else {
					v += max(0, s.rate*seasonal(m)*noise)
				}
				added += extra[key][m]
			case kindGauge:
				v = s.level * (1 + 0.05*(daily(m)-1)) * (1 + 0.001*rng.NormFloat64())
			case kindConstant:
				v = s.level
			case kindTimestamp:
				v = s.level + float64(m-s.eval)*60
			}
			val := v + added
			if r, ok := replace[key][m]; ok {
				held = r
			}
			if m >= repFrom && m <= repTo {
				val = held
			}
			// up is written by Prometheus itself, also when a
			// scrape fails: it has no gaps.
			if gap(m) && s.lbls.Get(model.MetricNameLabel) != "up" {
				continue
			}
			out = append(out, noisePoint{s.lbls, int64(m) * time.Minute.Milliseconds(), val})
		}
	}
	return out
}

// attack returns the part of d's attack scenario that differs from its
// benign one, placed so that the attack scenario's eval time falls at
// minute end of the generated world: increments to add to counters present
// in both scenarios, values that replace gauges, and series that only the
// attack has. start is the minute the attack begins.
func attack(d detect.Detector, end int) (extra, replace map[string]map[int]float64, only []noisePoint, start int, err error) {
	extra, replace = map[string]map[int]float64{}, map[string]map[int]float64{}
	benign := map[string][]detect.Sample{}
	for _, in := range d.Test.Benign.Series {
		lbls, samples, err := in.Samples(d.Test.Benign.Step())
		if err != nil {
			return nil, nil, nil, 0, err
		}
		benign[lbls.String()] = samples
	}
	fireEval := int(d.Test.Fire.Eval.Minutes())
	type fs struct {
		lbls    labels.Labels
		samples []detect.Sample
	}
	var fire []fs
	begin := fireEval
	for _, in := range d.Test.Fire.Series {
		lbls, samples, err := in.Samples(d.Test.Fire.Step())
		if err != nil {
			return nil, nil, nil, 0, err
		}
		fire = append(fire, fs{lbls, samples})
		b, ok := benign[lbls.String()]
		if !ok {
			if len(samples) > 0 {
				begin = min(begin, int(samples[0].Offset.Minutes()))
			}
			continue
		}
		// The first minute where the attack's increments (or values)
		// leave the benign ones.
		for i := 1; i < len(samples) && i < len(b); i++ {
			df, db := samples[i].Value-samples[i-1].Value, b[i].Value-b[i-1].Value
			if math.Abs(df-db) > 1e-9*max(1, math.Abs(db)) || samples[i].Value != b[i].Value && !isCounter(lbls) {
				begin = min(begin, int(samples[i-1].Offset.Minutes()))
				break
			}
		}
	}
	shift := end - fireEval
	persist := int(Persist.Minutes())
	for _, f := range fire {
		key := f.lbls.String()
		b, matched := benign[key]
		clock := 0.0
		if isTimestamp(f.lbls.Get(model.MetricNameLabel)) {
			clock = float64(shift) * 60
		}
		for i, s := range f.samples {
			m := int(s.Offset.Minutes())
			if m < begin {
				continue
			}
			last := i == len(f.samples)-1
			switch {
			case !matched:
				only = append(only, noisePoint{f.lbls, int64(m+shift) * time.Minute.Milliseconds(), s.Value + clock})
				if last {
					// The new object stays.
					for p := 1; p <= persist; p++ {
						only = append(only, noisePoint{f.lbls, int64(m+shift+p) * time.Minute.Milliseconds(), s.Value + clock})
					}
				}
			case isCounter(f.lbls):
				if i > 0 && i < len(b) {
					if extra[key] == nil {
						extra[key] = map[int]float64{}
					}
					inc := (s.Value - f.samples[i-1].Value) - (b[i].Value - b[i-1].Value)
					extra[key][m+shift] += inc
					if last {
						// The attack goes on at its last rate.
						step := int((s.Offset - f.samples[i-1].Offset).Minutes())
						for p := 1; p <= persist; p++ {
							extra[key][m+shift+p] += inc / float64(max(1, step))
						}
					}
				}
			default:
				if replace[key] == nil {
					replace[key] = map[int]float64{}
				}
				replace[key][m+shift] = s.Value + clock
				if last && i > 0 {
					// The attack goes on along its last trend.
					step := (s.Offset - f.samples[i-1].Offset).Minutes()
					slope := (s.Value - f.samples[i-1].Value) / max(1, step)
					for p := 1; p <= persist; p++ {
						replace[key][m+shift+p] = max(0, s.Value+clock+slope*float64(p))
					}
				}
			}
		}
	}
	return extra, replace, only, begin + shift, nil
}

func isCounter(l labels.Labels) bool {
	name := l.Get(model.MetricNameLabel)
	for _, suf := range []string{"_total", "_bucket", "_count", "_sum"} {
		if strings.HasSuffix(name, suf) {
			return true
		}
	}
	return false
}

// alerts evaluates d every minute over [from, to] (minutes of the world) and
// returns the minutes at which an alert started firing: a run of results
// that lasted for: (a gap in the results ends a run). Alerts that began
// before from are not counted.
func alerts(ctx context.Context, eng *promql.Engine, st storage.Queryable, d detect.Detector, from, to int) ([]int, error) {
	start := time.Unix(0, 0).Add(time.Duration(from) * time.Minute)
	end := time.Unix(0, 0).Add(time.Duration(to) * time.Minute)
	q, err := eng.NewRangeQuery(ctx, st, nil, d.Expr, start, end, time.Minute)
	if err != nil {
		return nil, err
	}
	defer q.Close()
	res := q.Exec(ctx)
	if res.Err != nil {
		return nil, res.Err
	}
	mat, err := res.Matrix()
	if err != nil {
		return nil, err
	}
	forMin := int(d.For.Minutes())
	var fired []int
	for _, s := range mat {
		runStart, prev := -1, -2
		for _, p := range s.Floats {
			m := int(p.T / time.Minute.Milliseconds())
			if m != prev+1 {
				runStart = m
			}
			prev = m
			if m-runStart == forMin && runStart > from-1 {
				fired = append(fired, m)
			}
		}
	}
	slices.Sort(fired)
	return fired, nil
}

func noiseEngine(d detect.Detector) *promql.Engine {
	return promql.NewEngine(promql.EngineOpts{
		MaxSamples:               100_000_000,
		Timeout:                  10 * time.Minute,
		LookbackDelta:            5 * time.Minute,
		EnableAtModifier:         true,
		EnableNegativeOffset:     true,
		NoStepSubqueryIntervalFn: func(int64) int64 { return time.Minute.Milliseconds() },
		Parser:                   d.Parser(),
	})
}

func openWorld(points []noisePoint) (*tsdb.DB, func(), error) {
	dir, err := os.MkdirTemp("", "promgate-noise-")
	if err != nil {
		return nil, nil, err
	}
	opts := tsdb.DefaultOptions()
	opts.RetentionDuration = 0
	db, err := tsdb.Open(dir, nil, nil, opts, nil)
	if err != nil {
		os.RemoveAll(dir) //nolint:errcheck // best effort
		return nil, nil, err
	}
	cleanup := func() {
		db.Close()        //nolint:errcheck // a temporary database
		os.RemoveAll(dir) //nolint:errcheck // best effort
	}
	slices.SortStableFunc(points, func(a, b noisePoint) int { return cmp.Compare(a.t, b.t) })
	ctx := context.Background()
	app := db.Appender(ctx)
	for i, p := range points {
		if _, err := app.Append(0, p.lbls, p.t, p.v); err != nil {
			cleanup()
			return nil, nil, fmt.Errorf("append %s at %d: %w", p.lbls, p.t, err)
		}
		if i%50_000 == 49_999 {
			if err := app.Commit(); err != nil {
				cleanup()
				return nil, nil, err
			}
			app = db.Appender(ctx)
		}
	}
	if err := app.Commit(); err != nil {
		cleanup()
		return nil, nil, err
	}
	return db, cleanup, nil
}

// Run runs the benchmark for one detector with the given seed: the benign
// week, then the same week with the attack injected at a random minute.
func Run(ctx context.Context, d detect.Detector, seed uint64) (Result, error) {
	r := Result{ID: d.ID, Severity: d.Severity}
	var ss []noiseSeries
	for i, in := range d.Test.Benign.Series {
		s, err := classify(in, d.Test.Benign.Step(), seed+uint64(i)*7919)
		if err != nil {
			return r, err
		}
		ss = append(ss, s)
	}
	evalFrom := (Weeks - 1) * int(week.Minutes())
	evalTo := Weeks * int(week.Minutes())
	eng := noiseEngine(d)

	db, cleanup, err := openWorld(generate(ss, nil, nil))
	if err != nil {
		return r, err
	}
	fired, err := alerts(ctx, eng, db, d, evalFrom, evalTo)
	cleanup()
	if err != nil {
		return r, fmt.Errorf("%s: benign week: %w", d.ID, err)
	}
	r.FalseAlerts = len(fired)

	// The attack's scenario ends somewhere in the evaluated week, at least
	// a day in, and the attack goes on for Persist after it.
	rng := rand.New(rand.NewPCG(seed, uint64(len(d.ID)))) //nolint:gosec // G404: a reproducible attack time, not a secret
	end := evalFrom + 1440 + rng.IntN(int(week.Minutes())-1440-int(Persist.Minutes()))
	extra, replace, only, start, err := attack(d, end)
	if err != nil {
		return r, err
	}
	points := append(generate(ss, extra, replace), only...)
	db, cleanup, err = openWorld(points)
	if err != nil {
		return r, err
	}
	defer cleanup()
	fired, err = alerts(ctx, eng, db, d, start, end+int(Persist.Minutes()))
	if err != nil {
		return r, fmt.Errorf("%s: attack: %w", d.ID, err)
	}
	r.AttackAt = time.Duration(start-evalFrom) * time.Minute
	for _, m := range fired {
		if m >= start {
			r.Detected = true
			r.TimeToDetect = time.Duration(m-start) * time.Minute
			break
		}
	}
	return r, nil
}
