// Package noise is the detector noise benchmark (make detectors-eval): how
// each detector of the catalog behaves on a week of ordinary traffic, and
// whether and how fast it sees its attack injected into that week.
//
// For every detector, a generator turns each series of the
// detector's benign scenario into three weeks of one-minute samples with the
// shapes real traffic has: a daily cycle, quieter weekends, a nightly batch
// job, two deploys that reset counters, scrape gaps, and a holiday in the
// last week. The detector's expression is evaluated every minute over the
// last week (the two before are history for weekly baselines), and each run
// that lasts at least for: counts as one alert. The attack is then injected:
// the part of the detector's attack scenario that differs from its benign
// one is added at a random time of the last week, and the time from its start
// to the first firing is the time to detect.
//
// Each detector gets a world of its own, built from its own scenarios, so
// that detectors reading the same metric under other labels do not disturb
// each other; cross-source effects are not measured.
package noise
