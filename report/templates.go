package report

import (
	"crypto/sha256"
	"fmt"
	"regexp"
	"slices"
	"strings"

	"tally/periods"
)

// Range is the time a template covers.
type Range int

// Template ranges.
const (
	PeriodRange Range = iota // the run's period (a day, a week, a month)
	WeekRange                // a week only
	PointInTime              // the snapshot of the period's last day
)

// Part is one file of a template (Customer Subscriptions has one per table).
type Part struct {
	Table   string // what the part reads (e.g. expiring)
	Suffix  string // " - Expiring" in the file name, "" for single-file templates
	Columns []Column
}

// Template is a report definition.
type Template struct {
	Name   string
	Slug   string
	Range  Range
	Parts  []Part
	Custom *Custom // nil for built-ins
}

// Custom is a built-in template with chosen columns and filters.
type Custom struct {
	Name    string              `json:"name" yaml:"name"`
	Base    string              `json:"base" yaml:"base"`       // a built-in template's name or slug
	Columns []string            `json:"columns" yaml:"columns"` // CSV headers of the base, in the order wanted (empty: all)
	Filters map[string][]string `json:"filters,omitempty" yaml:"filters"`
}

func col(h string) Column { return Column{Header: h, Kind: String} }

// dcol is a text column of few distinct values: dictionary-encoded in Parquet.
func dcol(h string) Column { return Column{Header: h, Kind: String, Dict: true} }

// icol is a count (licenses, days, calls): few distinct values in a row
// group of a report sorted by customer, so dictionary-encoded too.
func icol(h string) Column { return Column{Header: h, Kind: Int, Dict: true} }
func fcol(h string) Column { return Column{Header: h, Kind: Float} }
func bcol(h string) Column { return Column{Header: h, Kind: Bool} }
func pcol(h string) Column { return Column{Header: h, Kind: Percent} }
func lcol(h string) Column { return Column{Header: h, Kind: PercentList} }

// Built-in templates (SPEC §8): exactly these CSV headers.
var (
	FlexLicenseUsage = &Template{Name: "Flex License Usage", Slug: "flex-license-usage", Range: PeriodRange, Parts: []Part{{Table: "flex", Columns: []Column{
		dcol("Partner Name"), dcol("Customer Name"), col("Subscription ID"), col("Subscriber ID"), dcol("License Type"),
		icol("Entitled"), icol("Consumed"), dcol("Compliance")}}}}

	DedicatedInstance = &Template{Name: "Dedicated Instance Usage by Cluster", Slug: "dedicated-instance-usage-by-cluster", Range: PeriodRange, Parts: []Part{{Table: "clusters", Columns: []Column{
		dcol("Region"), col("Cluster"), col("Server"), icol("Professional"), icol("Common Area"), icol("TelePresence")}}}}

	CustomerSubscriptions = &Template{Name: "Customer Subscriptions", Slug: "customer-subscriptions", Range: WeekRange, Parts: []Part{
		{Table: "recently_added", Suffix: " - Recently Added", Columns: []Column{dcol("Customer Name"), col("Subscription ID"), icol("Days Since Added"),
			icol("Total Licenses"), icol("Used"), icol("Assigned"), icol("Available"), icol("Weekly Assignment Change"), icol("Weekly Usage Change")}},
		{Table: "expiring", Suffix: " - Expiring", Columns: []Column{dcol("Customer Name"), col("Subscription ID"), icol("Days to Expiry"),
			icol("Total Licenses"), icol("Used"), icol("Assigned"), icol("Available"), lcol("Usage Over the Last 3 Months (%)")}},
		{Table: "renewing", Suffix: " - Renewing", Columns: []Column{dcol("Customer Name"), col("Subscription ID"), icol("Days to Renewal"),
			icol("Total Licenses"), icol("Used"), icol("Assigned"), icol("Available"), lcol("Usage Over the Last 3 Months (%)")}},
		{Table: "low_assignment", Suffix: " - Low Assignment", Columns: []Column{dcol("Customer Name"), col("Subscription ID"), icol("Months Since Added"),
			icol("Assigned"), pcol("Assigned Percent"), icol("Total Licenses"), icol("Used"), icol("Available"), icol("Weekly Assignment Change")}},
		{Table: "overage", Suffix: " - Overage", Columns: []Column{dcol("Customer Name"), col("Subscription ID"), icol("Months Remaining"),
			bcol("Auto-Renew"), icol("Total Licenses"), icol("Assigned"), pcol("Assigned Percent"), icol("Used"), pcol("Used Percent"), icol("Overage")}},
	}}

	CallingUsageDetail = &Template{Name: "Calling Usage Detail", Slug: "calling-usage-detail", Range: PeriodRange, Parts: []Part{{Table: "calling", Columns: []Column{
		dcol("Customer Name"), col("Org ID"), dcol("Location"), icol("Total Calls"), icol("Total Call Events"), icol("Total Poor Quality Calls"),
		icol("Call Minutes"), icol("Call Minutes - Video"), icol("Call Legs - Audio"), icol("Call Legs - Video"), icol("Call Legs - Desk Phone"),
		icol("Call Legs - Room Device"), icol("Call Legs - Other Devices"), icol("Calls - Hunt Group"), icol("Calls - Auto Attendant"),
		icol("Call Queue - Total Calls"), icol("Call Queue - Timed Out"), icol("Call Queue - Overflowed"), icol("Call Queue - Forwarded"),
		icol("Call Queue - Abandoned")}}}}

	Devices = &Template{Name: "Devices", Slug: "devices", Range: PointInTime, Parts: []Part{{Table: "devices", Columns: []Column{
		col("External ID"), dcol("Customer"), col("Customer Org ID"), col("Location ID"), dcol("Location Name"), dcol("Product"),
		col("MAC Address"), dcol("Firmware"), col("Phone Number"), col("Extension"), col("User ID"), col("User UUID")}}}}

	PhoneNumbers = &Template{Name: "Phone Numbers", Slug: "phone-numbers", Range: PointInTime, Parts: []Part{{Table: "numbers", Columns: []Column{
		col("External ID"), dcol("Customer"), col("Customer Org ID"), col("Location ID"), dcol("Location Name"), dcol("Country"),
		col("Phone Number"), col("Extension"), dcol("PSTN Connection"), bcol("Active"), dcol("User Type"), dcol("Number Type"),
		col("User ID"), col("User UUID")}}}}
)

// BuiltIns lists the built-in templates.
var BuiltIns = []*Template{FlexLicenseUsage, DedicatedInstance, CustomerSubscriptions, CallingUsageDetail, Devices, PhoneNumbers}

// Lookup finds a built-in template by name or slug.
func Lookup(nameOrSlug string) (*Template, error) {
	for _, t := range BuiltIns {
		if strings.EqualFold(t.Name, nameOrSlug) || t.Slug == nameOrSlug {
			return t, nil
		}
	}
	var names []string
	for _, t := range BuiltIns {
		names = append(names, fmt.Sprintf("%q (%s)", t.Name, t.Slug))
	}
	return nil, fmt.Errorf("unknown template %q: the templates are %s", nameOrSlug, strings.Join(names, ", "))
}

var customName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9 ]{0,48}[A-Za-z0-9]$`)

// Build validates a custom template and returns it as a template.
func (c *Custom) Build() (*Template, error) {
	if !customName.MatchString(c.Name) {
		return nil, fmt.Errorf("custom template name %q: 2–50 letters, digits and spaces, starting and ending with a letter or digit", c.Name)
	}
	base, err := Lookup(c.Base)
	if err != nil {
		return nil, fmt.Errorf("custom template %q: %w", c.Name, err)
	}
	if len(base.Parts) != 1 {
		return nil, fmt.Errorf("custom template %q: %s has several tables and cannot be customised", c.Name, base.Name)
	}
	all := base.Parts[0].Columns
	cols := all
	if len(c.Columns) > 0 {
		cols = nil
		for _, h := range c.Columns {
			i := findColumn(all, h)
			if i < 0 {
				return nil, fmt.Errorf("custom template %q: %s has no column %q (it has %s)", c.Name, base.Name, h, headers(all))
			}
			cols = append(cols, all[i])
		}
	}
	for h := range c.Filters {
		if findColumn(all, h) < 0 {
			return nil, fmt.Errorf("custom template %q: filter on unknown column %q (%s has %s)", c.Name, h, base.Name, headers(all))
		}
	}
	slug := "custom-" + SnakeCase(c.Name)
	slug = strings.ReplaceAll(slug, "_", "-")
	return &Template{Name: c.Name, Slug: slug, Range: base.Range, Parts: []Part{{Table: base.Parts[0].Table, Columns: cols}}, Custom: c}, nil
}

// Base is the built-in a template reads its rows from.
func (t *Template) Base() *Template {
	if t.Custom == nil {
		return t
	}
	b, _ := Lookup(t.Custom.Base)
	return b
}

func findColumn(cols []Column, h string) int {
	for i, c := range cols {
		if strings.EqualFold(c.Header, h) || c.Name() == h {
			return i
		}
	}
	return -1
}

func headers(cols []Column) string {
	var hs []string
	for _, c := range cols {
		hs = append(hs, fmt.Sprintf("%q", c.Header))
	}
	return strings.Join(hs, ", ")
}

// Project maps a base row to the template's columns and applies its filters;
// ok is false when a filter drops the row.
func (t *Template) Project(part int, base []Column, row []Value) (out []Value, ok bool) {
	if t.Custom == nil {
		return row, true
	}
	for h, allowed := range t.Custom.Filters {
		if i := findColumn(base, h); i >= 0 && !slices.Contains(allowed, row[i].Text()) {
			return nil, false
		}
	}
	out = make([]Value, len(t.Parts[part].Columns))
	for i, c := range t.Parts[part].Columns {
		out[i] = row[findColumn(base, c.Header)]
	}
	return out, true
}

const alnum = "abcdefghijklmnopqrstuvwxyz0123456789"

// Token is the 8 alphanumeric characters of a report's file name: derived from
// (subscription, period), so a re-run replaces the same files.
func Token(subscription string, p periods.Period) string {
	sum := sha256.Sum256([]byte(subscription + "\x00" + string(p.Cadence) + "\x00" + p.ID()))
	b := make([]byte, 8)
	for i := range b {
		b[i] = alnum[int(sum[i])%len(alnum)]
	}
	return string(b)
}

// FileName is <Template Name>[ - <Table>]_<8 alnum>_<YYYY-MM-DD> (without
// extension): the date is the day the scheduled run produces it, the day after
// the period ends.
func FileName(t *Template, part int, subscription string, p periods.Period) string {
	return fmt.Sprintf("%s%s_%s_%s", t.Name, t.Parts[part].Suffix, Token(subscription, p), p.End().Format("2006-01-02"))
}

// Key is where a report file lives: reports/region=<R>/<slug>/<cadence>/<period>/<file>.<ext>.
func Key(region string, t *Template, p periods.Period, file, ext string) string {
	return fmt.Sprintf("reports/region=%s/%s/%s/%s/%s.%s", region, t.Slug, p.Cadence, p.ID(), file, ext)
}
