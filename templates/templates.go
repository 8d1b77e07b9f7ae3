// Package templates owns tally's embedded email templates (HTML and plain text).
package templates

import "embed"

// FS holds the templates: email/report.{html,txt}.tmpl for report emails and
// digests, email/failure.{html,txt}.tmpl for failure notifications.
//
//go:embed email/*.tmpl
var FS embed.FS
