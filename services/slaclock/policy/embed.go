// Package policydata ships the default SLA policy document (sla.v1.json, the
// limits of domain.md §4). SLACLOCK_POLICY_FILE overrides it at start; a
// published SlaPolicyPublished event supersedes it at run time.
package policydata

import _ "embed"

// Default is the shipped policy document.
//
//go:embed sla.v1.json
var Default []byte
