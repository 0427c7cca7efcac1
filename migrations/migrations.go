// Package migrations embeds callrelay's schema changes, applied in order at start-up.
package migrations

import "embed"

// FS holds NNN_name.sql files; each is applied once, in a transaction, in number order.
//
//go:embed *.sql
var FS embed.FS
