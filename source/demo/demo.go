// Package demo is the built-in source: a seeded, realistic partner estate that is a
// pure function of (seed, day). Every entity's lifetime derives from a hash of its id
// and a fixed epoch, so generating day D never replays earlier days.
package demo

import (
	"cmp"
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"tally/model"
	"tally/periods"
	"tally/source"
)

// Epoch anchors every lifetime in the estate.
var Epoch = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

// far is "never" for an end of life.
var far = time.Date(9999, 1, 1, 0, 0, 0, 0, time.UTC)

// Options are the demo source's knobs.
type Options struct {
	Seed       uint64
	Scale      int     // customers at the epoch (the estate grows ~0.03% a day after it)
	BadRowRate float64 // share of rows made malformed, to exercise quarantine
}

// Generator is the demo source.
type Generator struct {
	seed    uint64
	scale   int
	badRate float64
}

var _ source.Source = (*Generator)(nil)

// New returns a demo source.
func New(o Options) (*Generator, error) {
	if o.Scale < 1 {
		return nil, fmt.Errorf("demo source: scale %d: must be at least 1", o.Scale)
	}
	if o.BadRowRate < 0 || o.BadRowRate > 1 {
		return nil, fmt.Errorf("demo source: bad_row_rate %g: must be between 0 and 1", o.BadRowRate)
	}
	return &Generator{seed: o.Seed, scale: o.Scale, badRate: o.BadRowRate}, nil
}

// Name is "demo".
func (g *Generator) Name() string { return "demo" }

// Partners are the estate's partners (fixed for a seed).
func (g *Generator) Partners(context.Context, periods.Period) ([]model.Partner, error) {
	ps := make([]model.Partner, len(partnerNames))
	for i, n := range partnerNames {
		ps[i] = model.Partner{PartnerID: g.partnerID(i), PartnerName: n}
	}
	sort.Slice(ps, func(i, j int) bool { return ps[i].PartnerID < ps[j].PartnerID })
	return ps, nil
}

func (g *Generator) partnerID(i int) string { return fmt.Sprintf("P%06d", g.h("partner", i)%1000000) }

// location is a site of a customer.
type location struct{ id, name, country string }

// cust holds a customer's day-independent attributes.
type cust struct {
	i          int
	id, name   string
	slug       string
	region     string
	partner    int
	created    time.Time
	size       int // expected active users
	products   []string
	external   *string
	managedBy  string
	tags       []string
	dormant    bool
	locations  []location
	trialOnly  bool
	hasTrial   bool
	nClusters  int
	sharedDevs int
	tpRooms    int
}

func (c *cust) has(p string) bool { return slices.Contains(c.products, p) }
func (c *cust) calling() bool {
	return c.has("calling") || c.has("ucm-cloud") || c.has("dedicated-instance")
}

var productProfiles = [][]string{
	{"calling", "meetings", "messaging"},
	{"calling", "messaging"},
	{"dedicated-instance", "meetings", "messaging"},
	{"ucm-cloud", "messaging"},
	{"meetings", "messaging"},
	{"messaging"},
	{"calling", "dedicated-instance", "meetings"},
}
var profileWeights = []float64{35, 15, 15, 10, 15, 5, 5}

// cust derives customer i (nothing is cached: a day's customers are
// generated one at a time, so memory does not grow with the estate).
func (g *Generator) cust(i int) *cust {
	h := g.head(i)
	r := h.r
	c := &cust{i: i, id: uuidFrom(h.idA, h.idB), region: h.region, partner: h.partner, created: h.created}
	c.name = nameFirst[h.name[0]] + " " + nameSecond[h.name[1]] + " " + nameSuffix[c.region][h.name[2]]
	c.slug = fmt.Sprintf("c%x", g.h("slug", i)%0xfffff)
	c.size = max(3, int(math.Round(lognormal(r, 30, 0.8))))
	c.products = productProfiles[pick(r, []int{0, 1, 2, 3, 4, 5, 6}, profileWeights)]
	if r.Float64() < 0.2 {
		c.external = model.Str(fmt.Sprintf("EXT-%07d", r.IntN(10000000)))
		c.tags = append(c.tags, "wholesale")
	}
	c.managedBy = "partner"
	if r.Float64() < 0.15 {
		c.managedBy = "external-admin"
	}
	if r.Float64() < 0.4 {
		c.tags = append(c.tags, tags[1+r.IntN(len(tags)-1)])
	}
	c.dormant = r.Float64() < 0.1
	nloc := min(6, 1+c.size/40)
	cities := cities[c.region]
	for k := 0; k < nloc; k++ {
		country := countries[c.region][r.IntN(len(countries[c.region]))]
		c.locations = append(c.locations, location{
			id:      fmt.Sprintf("loc-%x", g.h("loc", i, k)%0xffffffff),
			name:    cities[(uint64(k)+g.h("city", i))%uint64(len(cities))] + map[bool]string{true: " HQ", false: " Office"}[k == 0],
			country: country,
		})
	}
	c.trialOnly = r.Float64() < 0.08
	c.hasTrial = c.trialOnly || r.Float64() < 0.3
	if c.has("dedicated-instance") || c.has("ucm-cloud") {
		c.nClusters = min(4, 1+c.size/150)
	}
	c.sharedDevs = max(1, int(math.Round(float64(c.size)*0.18)))
	c.tpRooms = r.IntN(2 + c.size/60)
	return c
}

// custHead is the start of customer i's derivation: what regionsOn needs to
// list and sort the day's customers without deriving each one whole.
type custHead struct {
	r        *rand.Rand // where cust goes on drawing
	idA, idB uint64     // the id's bits (uuidFrom)
	region   string
	partner  int
	name     [3]int
	created  time.Time
}

func (g *Generator) head(i int) custHead {
	r := g.rng("customer", i)
	a := g.h("customer-id", i)
	h := custHead{r: r, idA: a, idB: mix(a ^ 0x5bd1e995)}
	h.region = pick(r, model.Regions, []float64{45, 15, 30, 10})
	h.partner = pick(r, []int{0, 1, 2}, []float64{50, 30, 20})
	h.name = [3]int{r.IntN(len(nameFirst)), r.IntN(len(nameSecond)), r.IntN(len(nameSuffix[h.region]))}
	if i < g.scale {
		// The estate at the epoch: organisations created over the two years before it.
		h.created = Epoch.Add(-days(r.IntN(730)) - time.Duration(r.IntN(86400))*time.Second)
	} else {
		// Growth: about scale/3000 new organisations a day after the epoch.
		k := i - g.scale
		h.created = Epoch.Add(days(k*3000/g.scale) + time.Duration(r.IntN(86400))*time.Second)
	}
	return h
}

// custRef is where a customer sorts within its region: by id, whose bits
// sort as its text does (fixed-width hex). a is the id's first half; the
// second is derived again on the rare tie.
type custRef struct {
	i int32
	a uint64
}

// idBits are customer i's id as two halves.
func (g *Generator) idBits(i int) (uint64, uint64) {
	a := g.h("customer-id", i)
	return uuidBits(a, mix(a^0x5bd1e995))
}

// notYet marks, in the region list, a customer created after the day.
const notYet = 0xff

// regionsOn lists each customer's region (its index in model.Regions) on
// day, notYet for customers not created by then: a byte a customer.
func (g *Generator) regionsOn(day periods.Period) []uint8 {
	end := day.End()
	n := g.scale
	if end.After(Epoch) {
		n += int(end.Sub(Epoch)/(24*time.Hour))*g.scale/3000 + 1
	}
	out := make([]uint8, n)
	for i := range out {
		h := g.head(i)
		out[i] = notYet
		if h.created.Before(end) {
			out[i] = uint8(slices.Index(model.Regions, h.region))
		}
	}
	return out
}

// customersIn lists the customers of region r (an index in model.Regions)
// ordered by id: only where each sorts, one region at a time, the customers
// themselves derived as they are yielded.
func (g *Generator) customersIn(regions []uint8, r uint8) []custRef {
	var cs []custRef
	for i, in := range regions {
		if in == r {
			a, _ := g.idBits(i)
			cs = append(cs, custRef{i: int32(i), a: a})
		}
	}
	slices.SortFunc(cs, func(x, y custRef) int {
		if c := cmp.Compare(x.a, y.a); c != 0 {
			return c
		}
		_, bx := g.idBits(int(x.i))
		_, by := g.idBits(int(y.i))
		return cmp.Compare(bx, by)
	})
	return cs
}

// Customers yields every customer of day, one at a time, ordered by region
// then id.
func (g *Generator) Customers(ctx context.Context, day periods.Period, fn func(*source.CustomerDay) error) error {
	regions := g.regionsOn(day)
	for r := range model.Regions {
		for _, ref := range g.customersIn(regions, uint8(r)) {
			if err := ctx.Err(); err != nil {
				return err
			}
			c := g.cust(int(ref.i))
			if err := fn(g.customerDay(c, day)); err != nil {
				return err
			}
		}
	}
	return nil
}

// alive reports whether a thing born at from and gone at to exists on day.
func alive(from, to time.Time, day periods.Period) bool {
	return from.Before(day.End()) && !to.Before(day.End())
}

func (g *Generator) customerDay(c *cust, day periods.Period) *source.CustomerDay {
	cd := &source.CustomerDay{Region: c.region}
	cd.Customer = g.customerRow(c, day)
	cd.Clusters, cd.Servers = g.clusters(c, day)
	users, devices := g.usersAndDevices(c, day, cd.Clusters)
	cd.Devices = devices
	for _, u := range users {
		cd.Users = append(cd.Users, u.User)
	}
	cd.Numbers = g.numbers(c, day, users)
	cd.Subscriptions, cd.Orders = g.subscriptions(c, day)
	if c.calling() {
		cd.Calls = g.calls(c, day, cd.Users, cd.Devices)
	}
	cd.Sort()
	return cd
}

func (g *Generator) customerRow(c *cust, day periods.Period) model.Customer {
	row := model.Customer{
		CustomerID: c.id, CustomerName: c.name, PartnerID: g.partnerID(c.partner),
		ExternalID: c.external, ManagedBy: c.managedBy, Products: c.products, Tags: c.tags,
		CreatedAt: c.created,
	}
	if c.tags == nil {
		row.Tags = []string{}
	}
	var login time.Time
	if c.dormant {
		login = c.created.Add(days(1 + int(g.h("dormant", c.i)%20)))
	} else {
		login = day.End().Add(-days(int(g.h("login", c.i, day.ID())%6)) - time.Duration(g.h("login-s", c.i, day.ID())%86400)*time.Second)
	}
	if login.After(c.created) && login.Before(day.End()) {
		login = login.Truncate(time.Second)
		row.LastAdminLoginAt = &login
	}
	if g.bad("customer", c.i, day) {
		row.ManagedBy = "nobody"
	}
	return row
}

// bad decides, deterministically, whether a row of the day is made malformed.
func (g *Generator) bad(parts ...any) bool {
	if g.badRate <= 0 {
		return false
	}
	return float64(g.h(append([]any{"bad"}, parts...)...)>>11)/(1<<53) < g.badRate
}

var clusterVersions = []string{"12.5", "14", "15"}

func (g *Generator) clusters(c *cust, day periods.Period) ([]model.Cluster, []model.Server) {
	var cls []model.Cluster
	var srvs []model.Server
	for k := 0; k < c.nClusters; k++ {
		r := g.rng("cluster", c.i, k)
		born := c.created.Add(days(r.IntN(30)))
		if k > 0 {
			born = c.created.Add(days(30 + r.IntN(500)))
		}
		if !alive(born, far, day) {
			continue
		}
		version := pick(r, clusterVersions, []float64{45, 35, 20})
		gen := 1
		// Some 12.5 clusters are rebuilt on 15 later: a new publisher node appears.
		if version == "12.5" && r.Float64() < 0.3 {
			if up := born.Add(days(60 + r.IntN(400))); up.Before(day.End()) {
				version, gen = "15", 2
			}
		}
		id := fmt.Sprintf("cl-%010x", g.h("cluster-id", c.i, k)%0xffffffffff)
		domain := fmt.Sprintf("%s.dedicated.example.net", c.slug)
		cl := model.Cluster{ClusterID: id, CustomerID: c.id, FQDN: fmt.Sprintf("ucm%d.%s", k+1, domain), Version: version}
		if g.bad("cluster", c.i, k, day) {
			cl.FQDN = ""
		}
		cls = append(cls, cl)
		nodes := 2 + r.IntN(3)
		for n := 0; n < nodes; n++ {
			role := "subscriber"
			if n == 0 {
				role = "publisher"
			}
			srvs = append(srvs, model.Server{
				ServerID:   fmt.Sprintf("srv-%010x", g.h("server", c.i, k, n, gen)%0xffffffffff),
				ClusterID:  id,
				CustomerID: c.id,
				Host:       fmt.Sprintf("cucm%d-%s%02d.%s", k+1, map[bool]string{true: "pub", false: "sub"}[n == 0], n, domain),
				Role:       role,
				Version:    version,
			})
		}
	}
	return cls, srvs
}

var userDeviceTypes = []string{"desk-phone", "soft-client", "mobile", "room", "telepresence", "other"}
var userDeviceWeights = []float64{52, 26, 12, 3, 2, 5}

// devicesPerUser is 0–14, most users with one or two.
func devicesPerUser(x float64) int {
	switch {
	case x < 0.20:
		return 0
	case x < 0.70:
		return 1
	case x < 0.87:
		return 2
	case x < 0.96:
		return 3 + int((x-0.87)/0.09*3) // 3–5
	case x < 0.99:
		return 6 + int((x-0.96)/0.03*5) // 6–10
	default:
		return 11 + int((x-0.99)/0.01*4) // 11–14
	}
}

// genUser is a generated user with the slot it came from.
type genUser struct {
	model.User
	slot int
	loc  location
}

func (g *Generator) usersAndDevices(c *cust, day periods.Period, cls []model.Cluster) ([]genUser, []model.Device) {
	var users []genUser
	var devs []model.Device
	slotsN := c.size * 5 / 4
	for j := 0; j < slotsN; j++ {
		r := g.rng("user", c.i, j)
		start := c.created.Add(days(r.IntN(30)))
		if float64(j) >= float64(c.size)*0.8 {
			start = c.created.Add(days(30 + r.IntN(600)))
		}
		end := far
		if r.Float64() < 0.25 {
			end = start.Add(days(60 + r.IntN(900)))
		}
		if !alive(start, end, day) {
			continue
		}
		u := model.User{
			UserID:               g.uuid("user-id", c.i, j),
			CustomerID:           c.id,
			Email:                givenNames[r.IntN(len(givenNames))] + "." + familyNames[r.IntN(len(familyNames))] + strconv.Itoa(j) + "@" + c.slug + ".example.com",
			HasDN:                r.Float64() < 0.65,
			HasSNR:               r.Float64() < 0.2,
			HasExtensionMobility: r.Float64() < 0.15,
			HasVoicemail:         r.Float64() < 0.6,
			HasMobileClient:      r.Float64() < 0.45,
		}
		u.HasDirectoryProfile = u.HasMobileClient && r.Float64() < 0.7
		var cluster *string
		if len(cls) > 0 {
			cluster = model.Str(cls[j%len(cls)].ClusterID)
			u.ClusterID = cluster
		}
		loc := c.locations[j%len(c.locations)]
		n := devicesPerUser(r.Float64())
		var ext, number *string
		if u.HasDN {
			ext = model.Str(strconv.Itoa(1000 + j))
			number = model.Str(g.phone(c, loc, "user", j))
		}
		for k := 0; k < n; k++ {
			dr := g.rng("device", c.i, j, k)
			added := start
			if k > 0 {
				added = start.Add(days(dr.IntN(300)))
			}
			removed := far
			if dr.Float64() < 0.15 {
				removed = added.Add(days(30 + dr.IntN(600)))
			}
			if !alive(added, removed, day) {
				continue
			}
			typ := pick(dr, userDeviceTypes, userDeviceWeights)
			d := g.device(c, dr, typ, strconv.Itoa(j)+"."+strconv.Itoa(k), loc, cluster, day)
			d.UserID = model.Str(u.UserID)
			d.PhoneNumber, d.Extension = number, ext
			devs = append(devs, d)
		}
		if g.bad("user", c.i, j, day) {
			u.Email = "not-an-address"
		}
		users = append(users, genUser{User: u, slot: j, loc: loc})
	}
	// Shared devices (analog lines, hallway phones, meeting rooms) and TelePresence rooms.
	for k := 0; k < c.sharedDevs+c.tpRooms; k++ {
		dr := g.rng("shared", c.i, k)
		added := c.created.Add(days(dr.IntN(400)))
		removed := far
		if dr.Float64() < 0.1 {
			removed = added.Add(days(60 + dr.IntN(500)))
		}
		if !alive(added, removed, day) {
			continue
		}
		typ := pick(dr, []string{"analog", "desk-phone", "room", "other"}, []float64{40, 35, 20, 5})
		if k >= c.sharedDevs {
			typ = "telepresence"
		}
		loc := c.locations[k%len(c.locations)]
		var cluster *string
		if len(cls) > 0 {
			cluster = model.Str(cls[k%len(cls)].ClusterID)
		}
		d := g.device(c, dr, typ, "s"+strconv.Itoa(k), loc, cluster, day)
		d.PhoneNumber = model.Str(g.phone(c, loc, "shared", k))
		d.Extension = model.Str(strconv.Itoa(8000 + k))
		devs = append(devs, d)
	}
	return users, devs
}

func (g *Generator) device(c *cust, r interface{ IntN(int) int }, typ, slot string, loc location, cluster *string, day periods.Period) model.Device {
	models := deviceModels[typ]
	m := models[r.IntN(len(models))]
	d := model.Device{
		DeviceID:     padded("dev-", g.h("device-id", c.i, slot)%0xffffffffffff, 16, 12),
		CustomerID:   c.id,
		ClusterID:    cluster,
		DeviceType:   m.typ,
		Product:      m.product,
		Firmware:     m.firmware,
		LocationID:   loc.id,
		LocationName: loc.name,
	}
	if m.hardware {
		d.MAC = strings.ToUpper(padded("", g.h("mac", c.i, slot)%0xffffffffffff, 16, 12))
	}
	if g.bad("device", c.i, slot, day) {
		d.DeviceType = "phone?"
	}
	return d
}

// phone is a stable E.164 number for the location's country.
func (g *Generator) phone(c *cust, loc location, kind string, k int) string {
	cc := dialCode[loc.country]
	digits := 10
	if cc != "1" {
		digits = 9
	}
	n := g.h("number", c.i, kind, k)
	return padded("+"+cc+strconv.FormatUint(2+n%8, 10), (n/8)%uint64(math.Pow10(digits-1)), 10, digits-1)
}

func (g *Generator) numbers(c *cust, day periods.Period, users []genUser) []model.Number {
	var out []model.Number
	add := func(n model.Number, badKey ...any) {
		n.CustomerID = c.id
		if n.PSTNConnection == "" {
			n.PSTNConnection = pstn[g.h("pstn", c.i, n.LocationID)%uint64(len(pstn))]
		}
		if g.bad(append([]any{"number", c.i, day}, badKey...)...) {
			n.Number = strings.Replace(n.Number, "+", "00-", 1) + "x"
		}
		out = append(out, n)
	}
	for _, u := range users {
		if !u.HasDN {
			continue
		}
		slot, loc := u.slot, u.loc
		add(model.Number{
			Number: g.phone(c, loc, "user", slot), Extension: model.Str(fmt.Sprint(1000 + slot)),
			LocationID: loc.id, LocationName: loc.name, Country: loc.country, IsActive: true,
			UserType: "People", NumberType: "Primary", UserID: model.Str(u.Email), UserUUID: model.Str(u.UserID),
		}, "user", slot)
		if g.h("alt", c.i, slot)%10 == 0 {
			add(model.Number{
				Number: g.phone(c, loc, "alt", slot), LocationID: loc.id, LocationName: loc.name,
				Country: loc.country, IsActive: true, UserType: "People", NumberType: "Alternate",
				UserID: model.Str(u.Email), UserUUID: model.Str(u.UserID),
			}, "alt", slot)
		}
	}
	for k, loc := range c.locations {
		add(model.Number{
			Number: g.phone(c, loc, "aa", k), Extension: model.Str(fmt.Sprint(7000 + k)), LocationID: loc.id,
			LocationName: loc.name, Country: loc.country, IsActive: true, UserType: "Auto Attendant", NumberType: "Primary",
		}, "aa", k)
	}
	for k := 0; k < c.size/15; k++ {
		loc := c.locations[k%len(c.locations)]
		add(model.Number{
			Number: g.phone(c, loc, "vl", k), Extension: model.Str(fmt.Sprint(7500 + k)), LocationID: loc.id,
			LocationName: loc.name, Country: loc.country, IsActive: true, UserType: "Virtual Line", NumberType: "Primary",
		}, "vl", k)
	}
	for k := 0; k < c.size/12; k++ {
		loc := c.locations[k%len(c.locations)]
		add(model.Number{
			Number: g.phone(c, loc, "spare", k), LocationID: loc.id, LocationName: loc.name,
			Country: loc.country, IsActive: false, UserType: "Unassigned", NumberType: "Primary",
		}, "spare", k)
	}
	return out
}
