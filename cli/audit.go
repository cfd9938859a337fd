package cli

import (
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/promgate/promgate/audit"
)

const auditUsage = `usage: promgate audit verify [-last-hash HEX] [-allow-restart] FILE...

Verifies the hash chain of audit files given oldest first; for a rotated set:
  promgate audit verify audit.log.3 audit.log.2 audit.log.1 audit.log
Prints every broken link (file:line, the link, the record id) and exits 1 if
there is any. -last-hash takes a hash published by the gateway (the metric
promgate_audit_last_hash_info or a "rotated audit file" log line) and fails
unless a record has it, which detects records cut from the end.

Files of several replicas (audit-gw-1.log, audit-gw-1.log.1, audit-gw-2.log,
...) may be given at once: a file and its rotated copies are one chain, each
chain is verified on its own and summarised on its own line, and the exit
code is 1 if any chain is broken. -last-hash then needs one replica's files.
`

// errChainBroken makes `audit verify` exit 1 after printing the breaks.
var errChainBroken = errors.New("the audit hash chain is broken")

func runAudit(args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] != "verify" {
		fmt.Fprint(stderr, auditUsage)
		return errUsage
	}
	fs := newFlagSet("audit verify", stderr)
	fs.Usage = func() { fmt.Fprint(stderr, auditUsage) }
	lastHash := fs.String("last-hash", "", "a published hash (at least 16 hex characters) that some record must have")
	allowRestart := fs.Bool("allow-restart", false, "accept records that restart the chain (chain_start) after the first record")
	if err := parseFlags(fs, args[1:]); err != nil {
		return err
	}
	if fs.NArg() == 0 {
		fmt.Fprint(stderr, auditUsage)
		return errUsage
	}
	names, chains := audit.Chains(fs.Args())
	if len(chains) > 1 {
		if *lastHash != "" {
			return fmt.Errorf("-last-hash names one chain's record: give it with one replica's files, not %d chains", len(chains))
		}
		return verifyChains(names, chains, *allowRestart, stdout)
	}
	res, err := audit.Verify(audit.VerifyOptions{LastHash: *lastHash, AllowRestart: *allowRestart}, fs.Args()...)
	if err != nil {
		return err
	}
	for _, b := range res.Breaks {
		fmt.Fprintln(stdout, b.String())
	}
	if more := res.NBreaks - len(res.Breaks); more > 0 {
		fmt.Fprintf(stdout, "... and %d more broken links\n", more)
	}
	anchor := "starts a new chain: " + res.AnchorStart
	switch {
	case res.Records == 0:
		anchor = "no records"
	case res.AnchorStart == "":
		anchor = "links to " + res.Anchor + ", a record in an earlier file that was not given (not checked)"
	}
	summary := fmt.Sprintf("%d files, %d records; the first record %s; last hash %s", res.Files, res.Records, anchor, res.Last)
	if res.Restarts > 0 {
		summary += fmt.Sprintf("; %d chain restarts", res.Restarts)
	}
	if !res.OK() {
		fmt.Fprintf(stdout, "FAIL: %d broken links in %s\n", res.NBreaks, summary)
		return fmt.Errorf("%w: %d broken links, the first at %s", errChainBroken, res.NBreaks, firstBreak(res))
	}
	fmt.Fprintf(stdout, "OK: %s\n", summary)
	return nil
}

func firstBreak(res *audit.Result) string {
	if len(res.Breaks) == 0 {
		return "?"
	}
	b := res.Breaks[0]
	if b.Line == 0 {
		return string(b.Link)
	}
	return strings.Join([]string{b.File, fmt.Sprint(b.Line)}, ":") + " (" + string(b.Link) + ")"
}

// verifyChains verifies several replicas' chains, each on its own, and
// prints one summary line per chain and one for the whole set.
func verifyChains(names []string, chains [][]string, allowRestart bool, stdout io.Writer) error {
	var broken []string
	records := 0
	for i, files := range chains {
		res, err := audit.Verify(audit.VerifyOptions{AllowRestart: allowRestart}, files...)
		if err != nil {
			return fmt.Errorf("chain %s: %w", names[i], err)
		}
		records += res.Records
		for _, b := range res.Breaks {
			fmt.Fprintln(stdout, b.String())
		}
		if res.OK() {
			fmt.Fprintf(stdout, "chain %s: OK: %d files, %d records; last hash %s\n", names[i], res.Files, res.Records, res.Last)
			continue
		}
		fmt.Fprintf(stdout, "chain %s: FAIL: %d broken links in %d files, %d records\n", names[i], res.NBreaks, res.Files, res.Records)
		broken = append(broken, names[i]+" at "+firstBreak(res))
	}
	if len(broken) > 0 {
		fmt.Fprintf(stdout, "FAIL: %d of %d chains broken\n", len(broken), len(chains))
		return fmt.Errorf("%w: %s", errChainBroken, strings.Join(broken, "; "))
	}
	fmt.Fprintf(stdout, "OK: %d chains, %d records\n", len(chains), records)
	return nil
}
