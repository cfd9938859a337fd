// Package promapi speaks the Prometheus HTTP API envelope: the error types and
// their statuses, and the JSON shape that Grafana and client libraries read.
//
// Every error the gateway answers on an API route goes through WriteError, so
// that the body is always {"status":"error","errorType":T,"error":msg}, served
// as JSON with nosniff. An Error carries two texts: Msg, which is shown to the
// client and must hold no upstream address, token, stack or policy internals,
// and Err, which goes only to logs and the audit record.
package promapi
