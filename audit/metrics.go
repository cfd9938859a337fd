package audit

import "github.com/prometheus/client_golang/prometheus"

// LastHashPrefix is how many hex characters of the last hash the metric
// promgate_audit_last_hash_info carries: 64 bits, enough that nobody can
// forge a different chain ending in the same prefix.
const LastHashPrefix = 16

var lastHashDesc = prometheus.NewDesc("promgate_audit_last_hash_info",
	"The first 16 hex characters of the hash of the last audit record written, in the hash label; always 1. "+
		"Prometheus keeps the history, so that `promgate audit verify -last-hash` can prove no record was cut from the end.",
	[]string{"hash"}, nil)

// lastHashCollector exports the chain's last hash as one series whose hash
// label is read at scrape time. There is never more than one series at a
// time; a new one starts at every scrape that follows new records.
type lastHashCollector struct{ w *Writer }

func (c lastHashCollector) Describe(ch chan<- *prometheus.Desc) { ch <- lastHashDesc }

func (c lastHashCollector) Collect(ch chan<- prometheus.Metric) {
	ch <- prometheus.MustNewConstMetric(lastHashDesc, prometheus.GaugeValue, 1, c.w.LastHash()[:LastHashPrefix])
}
