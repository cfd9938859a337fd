package proxy

import (
	"net/http"

	"github.com/promgate/promgate/authn"
	"github.com/promgate/promgate/promapi"
)

// serveScrape serves the exporter sidecar's scrape route. config refuses
// upstream.kind metrics until the sidecar is built, so this is unreachable.
func (h *Handler) serveScrape(w http.ResponseWriter, r *http.Request, st *state, id *authn.Identity) error {
	return promapi.Errorf(promapi.ErrNotFound, "not found: this gateway does not serve scrapes")
}
