package audit

import (
	"strings"
	"testing"
)

// TestRemoteRecord checks a remote write record's counts as written: counts
// and the mode, in the remote object.
func TestRemoteRecord(t *testing.T) {
	r := fullRecord()
	r.Route = "write"
	r.Remote = &Remote{WriteMode: "drop", Series: 3, Samples: 7, Metadata: 2, DroppedForeign: 1, DroppedMissing: 1, DroppedMetadata: 1, Forwarded: true}
	line := encodeOne(t, r)
	want := `"remote":{"write_mode":"drop","series":3,"samples":7,"metadata":2,"dropped_foreign":1,"dropped_missing":1,"dropped_metadata":1,"forwarded":true}`
	if !strings.Contains(line, want) {
		t.Errorf("record %s\nwant it to hold %s", line, want)
	}
}
