package demo

import (
	"math"
	"strconv"
	"time"

	"tally/model"
	"tally/periods"
)

var (
	routes        = []string{"", "hunt-group", "auto-attendant", "call-queue"}
	routeWeights  = []float64{70, 10, 7, 13}
	outcomes      = []string{"answered", "abandoned", "timed-out", "overflowed", "forwarded"}
	outcomeWeight = []float64{75, 12, 5, 5, 3}
	directions    = []string{"inbound", "outbound", "internal"}
)

// calls generates the day's call legs: about 3.75 legs per active user on a
// weekday, a fifth of that at the weekend, with a realistic share of poor legs.
func (g *Generator) calls(c *cust, day periods.Period, users []model.User, devices []model.Device) []model.CallLeg {
	if len(users) == 0 {
		return nil
	}
	devOf := map[string][]string{}
	for _, d := range devices {
		if d.UserID != nil {
			devOf[*d.UserID] = append(devOf[*d.UserID], d.DeviceType)
		}
	}
	r := g.rng("calls", c.i, day.ID())
	target := float64(len(users)) * 3.75
	if wd := day.Start.Weekday(); wd == time.Saturday || wd == time.Sunday {
		target *= 0.2
	}
	target *= 0.8 + 0.4*r.Float64()
	var legs []model.CallLeg
	prefix := "call-" + c.slug + "-" + day.Start.Format("20060102") + "-"
	for n := 0; float64(len(legs)) < target; n++ {
		callID := padded(prefix, uint64(n), 10, 6)
		start := day.Start.Add(time.Duration(r.Float64()*86400*1e6) * time.Microsecond)
		dur := int64(math.Round(lognormal(r, 150, 0.9)))
		route := pick(r, routes, routeWeights)
		video := r.Float64() < 0.15
		dir := pick(r, directions, []float64{40, 35, 25})
		nlegs := 1
		if dir == "internal" {
			nlegs = 2
		}
		if route != "" {
			nlegs++
		}
		var outcome string
		var wait int64
		if route == "call-queue" {
			outcome = pick(r, outcomes, outcomeWeight)
			wait = int64(math.Round(lognormal(r, map[bool]float64{true: 25, false: 70}[outcome == "answered"], 0.6)))
			if outcome == "abandoned" {
				dur = 0
			}
		}
		for k := 0; k < nlegs; k++ {
			u := users[r.IntN(len(users))]
			typ := "soft-client"
			if ds := devOf[u.UserID]; len(ds) > 0 {
				typ = ds[r.IntN(len(ds))]
			}
			leg := model.CallLeg{
				LegID:           callID + "-" + strconv.Itoa(k),
				CallID:          callID,
				CustomerID:      c.id,
				LocationID:      c.locations[r.IntN(len(c.locations))].id,
				UserID:          model.Str(u.UserID),
				DeviceType:      typ,
				StartTime:       start,
				DurationSeconds: dur,
				Direction:       dir,
				IsVideo:         video,
				AudioJitterMs:   round1(lognormal(r, 12, 0.6)),
				AudioLatencyMs:  round1(lognormal(r, 90, 0.5)),
				AudioLossPct:    round1(lognormal(r, 0.3, 0.9)),
			}
			if route != "" {
				leg.RoutedVia = model.Str(route)
			}
			if outcome != "" {
				leg.QueueOutcome, leg.QueueWaitSeconds = model.Str(outcome), &wait
			}
			if video {
				leg.VideoJitterMs = ptr(round1(lognormal(r, 15, 0.6)))
				leg.VideoLatencyMs = ptr(round1(lognormal(r, 95, 0.5)))
				leg.VideoLossPct = ptr(round1(lognormal(r, 0.4, 0.9)))
			}
			g.degrade(r, &leg)
			if g.bad("call", c.i, leg.LegID, day) {
				leg.DurationSeconds = -1
			}
			legs = append(legs, leg)
		}
	}
	return legs
}

// degrade makes about 6% of legs poor, by one cause on one stream.
func (g *Generator) degrade(r interface{ Float64() float64 }, leg *model.CallLeg) {
	if r.Float64() >= 0.06 {
		return
	}
	cause := r.Float64()
	onVideo := leg.IsVideo && r.Float64() < 0.4
	jitter, latency, loss := &leg.AudioJitterMs, &leg.AudioLatencyMs, &leg.AudioLossPct
	if onVideo {
		jitter, latency, loss = leg.VideoJitterMs, leg.VideoLatencyMs, leg.VideoLossPct
	}
	switch {
	case cause < 0.4:
		*jitter = round1(160 + r.Float64()*200)
	case cause < 0.7:
		*latency = round1(420 + r.Float64()*600)
	default:
		*loss = round1(5.5 + r.Float64()*10)
	}
}

func round1(x float64) float64 { return math.Round(x*10) / 10 }
func ptr[T any](v T) *T        { return &v }
