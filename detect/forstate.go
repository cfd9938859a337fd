package detect

import (
	"context"
	"fmt"
	"time"

	"github.com/prometheus/common/model"
)

// Restoring for: state after a start.
//
// Prometheus keeps ALERTS_FOR_STATE so that an alert pending before a
// restart does not start its for: clock again from zero. The evaluator
// keeps no series of its own; it asks the data instead. At a detector's
// first evaluation that returns series, it runs
//
//	count_over_time((<expr>)[<for>:<interval>])
//
// once: for each series the expression returns now, how many of the past
// evaluation steps within for: it was returned at too. A series returned at
// every step has been active for the whole for: and fires at once; one
// returned at n steps is taken to have been active for the last n-1 steps
// (the steps are assumed contiguous and ending now, which can only make the
// clock later, never earlier, than a gap-free history would). A failed
// restore query leaves the clocks at zero, as before.

// restoreFor returns when each of d's current alerts became active
// according to the history, keyed by the alert's fingerprint.
func (e *Evaluator) restoreFor(ctx context.Context, d Detector, ts time.Time) map[model.Fingerprint]time.Time {
	if d.For <= 0 {
		return nil
	}
	step := e.interval
	q := fmt.Sprintf("count_over_time((%s)[%s:%s])", d.Expr, model.Duration(d.For), model.Duration(step))
	qctx, cancel := context.WithTimeout(ctx, e.interval)
	defer cancel()
	vec, err := e.q.Query(qctx, q, ts)
	if err != nil {
		if ctx.Err() == nil {
			e.log.Warn("detector for: state not restored", "detector", d.ID, "err", err)
		}
		return nil
	}
	steps := int(d.For / step)
	out := make(map[model.Fingerprint]time.Time, len(vec))
	for _, s := range vec {
		n := int(s.Value)
		if n <= 0 {
			continue
		}
		at := ts.Add(-time.Duration(n-1) * step)
		if n >= steps {
			at = ts.Add(-d.For)
		}
		out[alertLabels(d, s.Metric).Fingerprint()] = at
	}
	return out
}

// alertLabels are the labels of the alert a series of d becomes: the
// series' own without the metric name, the rule labels and alertname.
func alertLabels(d Detector, m model.Metric) model.LabelSet {
	lbls := model.LabelSet{}
	for k, v := range m {
		if k != model.MetricNameLabel {
			lbls[k] = v
		}
	}
	for k, v := range d.RuleLabels() {
		lbls[model.LabelName(k)] = model.LabelValue(v)
	}
	lbls[model.AlertNameLabel] = model.LabelValue(d.ID)
	return lbls
}
