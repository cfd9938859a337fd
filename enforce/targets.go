package enforce

import (
	"encoding/json"
	"fmt"
)

// targetMetric is the series every scrape target produces; a target is
// visible exactly when its up series is.
const targetMetric = "up"

// targetFields are the fields of an active target that a restricted caller
// gets, as Prometheus 2 and 3 write them. Each describes that target alone.
var targetFields = []string{
	"labels", "scrapePool", "scrapeUrl", "globalUrl", "lastError", "lastScrape",
	"lastScrapeDuration", "health", "scrapeInterval", "scrapeTimeout",
}

// FilterTargets filters an /api/v1/targets response body to what the caller
// may see. An unrestricted Enforcer returns body unchanged. Otherwise the
// data object keeps only:
//
//	key                  kept
//	activeTargets        the targets whose labels satisfy the decision, as the
//	                     caller's up series for them would: every enforced
//	                     label is present with an allowed value, and every
//	                     decision matcher holds, with __name__ read as up and
//	                     a missing label as ""; each with the fields of
//	                     targetFields only, discoveredLabels never
//	droppedTargets       always empty: a dropped target has only its
//	                     discoveredLabels, the service discovery's metadata
//	                     before relabelling
//	droppedTargetCounts  empty when the upstream sent it: it counts every
//	                     scrape pool's dropped targets
//
// Any other key of data, and any other field of a target, is dropped, so
// that what a later upstream adds is not passed on unread. The fields kept
// (scrapePool, scrapeUrl, lastError, health, ...) are as the upstream sent
// them, labels as checked. discoveredLabels is dropped because it holds the
// service discovery's meta labels, such as pod annotations and node names,
// which relabelling may have left out of the target's labels on purpose.
//
// A response that is not "success" loses its data key. The error wraps
// ErrUpstream.
func (en *Enforcer) FilterTargets(body []byte) ([]byte, error) {
	return en.filterData(body, "an object", en.filterTargetsData)
}

// filterTargetsData keeps the active targets of a targets answer's data
// that the caller may see, and empties the dropped ones.
func (en *Enforcer) filterTargetsData(data map[string]json.RawMessage) (map[string]json.RawMessage, error) {
	active, err := en.filterTargetList(data["activeTargets"])
	if err != nil {
		return nil, fmt.Errorf("%w: data.activeTargets: %v", ErrUpstream, err) //nolint:errorlint // ErrUpstream alone classifies this error; the cause is kept as text so that it cannot reclassify it
	}
	out := map[string]json.RawMessage{
		"activeTargets":  active,
		"droppedTargets": json.RawMessage(`[]`),
	}
	if _, ok := data["droppedTargetCounts"]; ok {
		out["droppedTargetCounts"] = json.RawMessage(`{}`)
	}
	return out, nil
}

// filterTargetList keeps the targets of a JSON array (or null, read as
// empty) that the caller may see, each with targetFields only and its
// labels encoded from what was checked.
func (en *Enforcer) filterTargetList(raw json.RawMessage) (json.RawMessage, error) {
	var list []map[string]json.RawMessage
	if len(raw) > 0 {
		if err := json.Unmarshal(raw, &list); err != nil {
			return nil, err
		}
	}
	kept := make([]map[string]json.RawMessage, 0, len(list))
	for i, t := range list {
		if t == nil {
			return nil, fmt.Errorf("[%d]: not an object", i)
		}
		var ls map[string]string
		if rl, ok := t["labels"]; ok {
			if err := json.Unmarshal(rl, &ls); err != nil {
				return nil, fmt.Errorf("[%d].labels: %w", i, err)
			}
		}
		if ls == nil {
			return nil, fmt.Errorf("[%d]: no labels", i)
		}
		if !en.seriesAllowed(ls, targetMetric) {
			continue
		}
		out := make(map[string]json.RawMessage, len(targetFields))
		for _, f := range targetFields {
			if v, ok := t[f]; ok {
				out[f] = v
			}
		}
		// Encoded again, so that a label repeated in the upstream's
		// object shows the value that was checked, whatever the
		// caller's JSON reader keeps.
		b, err := encode(ls)
		if err != nil {
			return nil, err
		}
		out["labels"] = b
		kept = append(kept, out)
	}
	return encode(kept)
}
