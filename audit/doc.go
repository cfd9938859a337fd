// Package audit writes promgate's audit trail: one JSON object per line for
// every request, allowed or not, to a file or to stdout.
//
// # Guarantees
//
//   - One record per Write call, on one line. encoding/json escapes every
//     control character and U+2028/U+2029 inside strings, so no field can
//     break a line or forge a second record.
//   - Order is preserved: records appear in the order their Write calls took
//     the writer's lock, and the hash chain links them in that order.
//     Encoding and redaction run before the lock, in parallel; under it,
//     Write only hashes the line and appends it to a buffer. Rotation,
//     reopening and writes to the operating system happen under that lock,
//     and nothing is written from anywhere else.
//   - No secrets. A Record has only typed fields (identity, route, queries,
//     decision, status, sizes, timing, an error string) and no free-form map,
//     so a token, cookie or key cannot slip in through headers or claims. The
//     client's X-Request-Id is escaped and truncated; the error string passes
//     through Redact as a second line of defence.
//   - Bounded records (issue 15). No line is longer than MaxRecordBytes
//     (8 KiB), hash chain and newline included, whatever the request
//     carried. Every string field is cut to MaxFieldBytes and every list
//     (query, enforced_query, identity.groups) to MaxListEntries entries and
//     MaxListBytes bytes, on a character boundary; when the line is still
//     too long, every cap is lowered together until it fits. The truncated
//     member names each field that was cut with the length and SHA-256 of
//     its full value (see Cut for the exact hash input), so that a record
//     still proves what was asked. Cutting happens before the record is
//     hashed, so the chain covers the line as stored. A denied request with
//     a megabyte of match[] values adds a few KiB to the file, not a
//     megabyte, and cannot rotate its sender's earlier records away.
//   - Failures are never silent. Every failed write, flush, sync, rotation or
//     reopen is returned to the caller, counted in
//     promgate_audit_failures_total and logged (at most once per few seconds,
//     with the number of failures not logged), and Healthy reports false until
//     a later write succeeds. With audit.on_failure: deny the gateway uses
//     Healthy to answer 503 and forward nothing.
//   - Durability (audit.mode). durable, the default: Write returns only once
//     its record is written and fsynced, and the records of concurrent Writes
//     share one write and one fsync (group commit, commit.go); a nil error
//     means the record survives a crash. buffered: records are written out at
//     least every flush interval (one second by default), when the buffer
//     fills, on Flush and on Close, and a file is fsynced after each periodic
//     flush. While the writer is unhealthy every Write writes through, so that
//     a nil error means the record reached the output.
//   - A file removed or replaced underneath (logrotate, an operator, an
//     attacker) is noticed at the next flush, by comparing the open file with
//     the path, logged as a warning and recreated. If it cannot be recreated,
//     for example because its folder is gone or no longer writable, writes
//     fail as above.
//   - Size-based rotation keeps audit.max_files rotated files (audit.log.1 is
//     the newest) and deletes older ones. Deleting a file that a shipper has
//     not confirmed in the checkpoint file audit.log.shipped (see
//     ShippedSuffix) is counted in promgate_audit_unshipped_rotations_total
//     and logged as a warning: unless shipped by other means, its records
//     are gone.
//
// # Refuses
//
// NewWriter refuses an empty path, a path whose folder does not exist, and
// anything that is not a regular file, such as a FIFO or a device: use "-"
// for stdout. Errors name the audit.* configuration key.
//
// # Hash chain
//
// Every record carries prev_hash and hash (and chain_start on a record that
// starts a chain), as its last members, in that order:
//
//	hash = hex(SHA-256(prev_hash ‖ canonical))
//
// where prev_hash is the 64 lowercase hex characters of the previous
// record's hash and canonical is the record's canonical JSON: the line as
// written, without its trailing `,"hash":"…"` member and newline, closed by
// `}`. It is what encoding/json writes for the Record with Hash empty
// (struct field order, no HTML escaping, no spaces), and it is hashed as
// stored, so a verifier never re-encodes anything. In a shell:
//
//	line=$(sed -n 5p audit.log); canonical="${line%,\"hash\":*}}"
//	printf '%s%s' "$prev_hash" "$canonical" | sha256sum
//
// The chain runs across files: the first record of a file links to the last
// record of the file before it, so the rotated set audit.log.N … audit.log.1
// audit.log is one chain. When NewWriter opens a file it continues the chain
// from the last line of audit.log (or of audit.log.1 when audit.log is
// missing or empty). Without any earlier file the first record starts a new
// chain: chain_start says why and prev_hash is ZeroHash. When the last line
// cannot be linked to (cut short by a crash, not JSON, written before the
// chain, or its hash does not match its content), the writer does not guess
// and does not repair: it logs a warning and starts a new chain whose
// chain_start names the file and the problem. audit verify reports that
// restart as a break unless -allow-restart is given, so an operator sees it
// either way. On stdout every process starts a new chain. A record refused
// by a failed write is not linked: the next record links to the last one
// stored.
//
// Verify (and `promgate audit verify`) recomputes every hash and link and
// names the first record where a link breaks: a changed record breaks its
// own hash; a removed, inserted or moved record breaks the prev_hash link of
// the record after the gap.
//
// # Threat model
//
// The chain has no key. It proves that the records between two hashes were
// not changed, removed, inserted or reordered; it does not prove who wrote
// them. Someone who can write the files can cut records off the end, or
// rewrite the whole tail and recompute every hash after the records they
// change, and the result verifies. What defeats that is a hash kept outside
// their reach: the writer publishes its last hash as the metric
// promgate_audit_last_hash_info (the first LastHashPrefix hex characters,
// read at scrape time, so Prometheus keeps a history of it) and logs it at
// every rotation, replaced file and Close. `promgate audit verify
// -last-hash H` fails unless some record has hash H: a tail cut or rewritten
// after H was published is found; one cut since the last scrape is not.
// Deleting whole rotated files from the beginning is rotation's normal work
// and is not detected; the first record's anchor is reported, not checked.
// Ship records off the host (audit.path "-" and a collector) when the host
// itself is not trusted.
package audit
