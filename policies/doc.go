// Package policies holds promgate's default authorization policy: Rego
// modules in package promgate.authz, their unit tests, and data.json, which
// maps groups to the Kubernetes namespaces they may read and names the admin
// groups. README.md describes the data layout for users.
//
// The policy guarantees a defined decision for every input: unauthenticated
// callers and callers in no known group are denied, admin groups are
// unrestricted, and everyone else is confined to the union of their groups'
// namespaces. The allowed namespaces come from data only, never from the
// request. FS embeds the folder so that the binary carries it.
package policies
