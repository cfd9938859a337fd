package console

import (
	"io"
	"testing"
)

func TestRenderEveryPage(t *testing.T) {
	pages := map[string]any{
		"overview": Overview{Base: Base{Title: "x"}, Active: []Detector{{ID: "a", State: "firing", Techniques: Techniques([]string{"T1496", "TA0008"})}}},
		"detector": DetectorPage{Base: Base{Title: "x"}, Rows: []Row{{Labels: []Label{{"a", "b"}}, Value: "1"}}, Windows: []string{"1h"}},
		"query":    QueryPage{Base: Base{Title: "x"}, Query: "up", Windows: []string{"1h"}},
		"topology": TopologyPage{Base: Base{Title: "x"}, Edges: []Edge{{From: "a/b", To: "c/d", New: true}}},
		"admin":    AdminPage{Base: Base{Title: "x"}, EvalDone: true, Refusals: []Count{{"a", 1}}},
		"message":  Message{Base: Base{Title: "x"}, Text: "t"},
	}
	for name, data := range pages {
		if err := Render(io.Discard, name, data); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
}
