package main

import (
	"context"
	"fmt"
	"strings"

	"tally/periods"
	"tally/source/files/landingtest"
	"tally/storage/local"
)

// reshapeLanding writes landing zone in's day into out shuffled and split
// (spec "in,out,day"): the delivery a partner's own tools make.
func reshapeLanding(spec string, parts int) error {
	f := strings.Split(spec, ",")
	if len(f) != 3 {
		return fmt.Errorf("-reshape %q: want IN,OUT,DAY", spec)
	}
	day, err := periods.Parse(periods.Daily, f[2])
	if err != nil {
		return err
	}
	in, err := local.Open(f[0])
	if err != nil {
		return err
	}
	out, err := local.New(f[1])
	if err != nil {
		return err
	}
	return landingtest.Shuffle(context.Background(), in, out, day, parts, 1)
}
