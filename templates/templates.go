// Package templates owns tally's embedded email and report templates.
package templates
