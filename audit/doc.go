// Package audit writes promgate's audit trail: one JSON object per line for
// every request, allowed or not, to a file or to stdout.
//
// # Guarantees
//
//   - One record per Write call, on one line. encoding/json escapes every
//     control character and U+2028/U+2029 inside strings, so no field can
//     break a line or forge a second record.
//   - Order is preserved: records appear in the order their Write calls took
//     the writer's lock. Encoding, rotation, reopening and writing happen
//     under that one lock, and nothing is written from anywhere else.
//   - No secrets. A Record has only typed fields (identity, route, queries,
//     decision, status, sizes, timing, an error string) and no free-form map,
//     so a token, cookie or key cannot slip in through headers or claims. The
//     client's X-Request-Id is escaped and truncated; the error string passes
//     through Redact as a second line of defence.
//   - Failures are never silent. Every failed write, flush, sync, rotation or
//     reopen is returned to the caller, counted in
//     promgate_audit_failures_total and logged (at most once per few seconds,
//     with the number of failures not logged), and Healthy reports false until
//     a later write succeeds. With audit.on_failure: deny the gateway uses
//     Healthy to answer 503 and forward nothing.
//   - Durability: records are buffered, written out at least every flush
//     interval (one second by default), when the buffer fills, on Flush and on
//     Close, and a file is fsynced after each periodic flush. While the writer
//     is unhealthy every Write writes through, so that a nil error means the
//     record reached the output.
//   - A file removed or replaced underneath (logrotate, an operator, an
//     attacker) is noticed at the next flush, by comparing the open file with
//     the path, logged as a warning and recreated. If it cannot be recreated,
//     for example because its folder is gone or no longer writable, writes
//     fail as above.
//   - Size-based rotation keeps audit.max_files rotated files (audit.log.1 is
//     the newest) and deletes older ones.
//
// # Refuses
//
// NewWriter refuses an empty path, a path whose folder does not exist, and
// anything that is not a regular file, such as a FIFO or a device: use "-"
// for stdout. Errors name the audit.* configuration key.
//
// # Not yet
//
// The records are not yet tamper-evident. The hash chain of DESIGN.md
// (prev_hash and hash in every record) and `promgate audit verify` come in a
// later change; the single lock around encoding is where the chain will live.
package audit
