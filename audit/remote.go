package audit

// Remote counts one remote write or read request. It has counts and the
// write mode only: no label, sample or chunk data ever reaches the audit
// log through it.
type Remote struct {
	// WriteMode is the write mode applied (inject, reject or drop); empty
	// for a read.
	WriteMode string `json:"write_mode,omitempty"`
	// Series, Samples, Histograms, Exemplars and Metadata count a write
	// request as received; Series and Samples also count a read answer
	// as sent (samples for SAMPLES, chunks in Chunks for a streamed one).
	Series     int `json:"series"`
	Samples    int `json:"samples"`
	Histograms int `json:"histograms,omitempty"`
	Exemplars  int `json:"exemplars,omitempty"`
	Metadata   int `json:"metadata,omitempty"`
	Chunks     int `json:"chunks,omitempty"`
	// Queries counts the queries of a read request.
	Queries int `json:"queries,omitempty"`
	// DroppedForeign, DroppedMissing and DroppedExcluded count the series
	// of a write that were not forwarded, by reason: a value the decision
	// does not allow, an enforced label missing, or a decision matcher.
	DroppedForeign  int `json:"dropped_foreign,omitempty"`
	DroppedMissing  int `json:"dropped_missing,omitempty"`
	DroppedExcluded int `json:"dropped_excluded,omitempty"`
	// DroppedMetadata counts the metadata entries not forwarded.
	DroppedMetadata int `json:"dropped_metadata,omitempty"`
	// Injected counts the series given an enforced label.
	Injected int `json:"injected,omitempty"`
	// Forwarded says whether anything was sent upstream.
	Forwarded bool `json:"forwarded"`
}
