package authz

import (
	"context"
	"os"
	"testing"
	"testing/synctest"
	"time"
)

func TestWatch(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		dir := writeFolder(t, policy(`decision := {"allow": true, "reason": "v1"}`))
		a := newAuthorizer(t, dir, nil)
		rev1 := a.Revision()
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan struct{})
		go func() {
			defer close(done)
			a.Watch(ctx, time.Second)
		}()

		reason := func() string {
			t.Helper()
			d, err := a.Decide(t.Context(), queryInput(alice))
			if err != nil {
				t.Fatal(err)
			}
			return d.Reason
		}

		// Unchanged folder: nothing happens.
		time.Sleep(1500 * time.Millisecond)
		synctest.Wait()
		if a.Revision() != rev1 {
			t.Fatalf("Revision() changed without a change")
		}

		// A good change is picked up at the next poll.
		writeFile(t, dir, "policy.rego", "package promgate.authz\n\ndecision := {\"allow\": true, \"reason\": \"v2\"}\n")
		time.Sleep(time.Second)
		synctest.Wait()
		if got := reason(); got != "v2" {
			t.Errorf("after a change, reason = %q, want v2", got)
		}
		rev2 := a.Revision()

		// A broken change keeps v2.
		writeFile(t, dir, "policy.rego", "package promgate.authz\n\ndecision := {\"allow\": net.lookup_ip_addr(\"x\")}\n")
		time.Sleep(time.Second)
		synctest.Wait()
		if got := reason(); got != "v2" || a.Revision() != rev2 {
			t.Errorf("after a broken change, reason = %q revision %q, want v2 %q", got, a.Revision(), rev2)
		}

		// Fixing it is picked up.
		writeFile(t, dir, "policy.rego", "package promgate.authz\n\ndecision := {\"allow\": true, \"reason\": \"v3\"}\n")
		time.Sleep(time.Second)
		synctest.Wait()
		if got := reason(); got != "v3" {
			t.Errorf("after the fix, reason = %q, want v3", got)
		}

		// A folder that vanishes keeps v3, and its return is picked up.
		moved := dir + ".moved"
		if err := os.Rename(dir, moved); err != nil {
			t.Fatal(err)
		}
		time.Sleep(2 * time.Second)
		synctest.Wait()
		if got := reason(); got != "v3" {
			t.Errorf("with the folder gone, reason = %q, want v3", got)
		}
		writeFile(t, moved, "policy.rego", "package promgate.authz\n\ndecision := {\"allow\": true, \"reason\": \"v4\"}\n")
		if err := os.Rename(moved, dir); err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Second)
		synctest.Wait()
		if got := reason(); got != "v4" {
			t.Errorf("after the folder returned, reason = %q, want v4", got)
		}

		cancel()
		<-done
	})
}
