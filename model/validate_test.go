package model

import (
	"regexp"
	"testing"
)

func TestAUUIDIsEightFourFourFourTwelveLowerCaseHexDigits(t *testing.T) {
	re := regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$`)
	for _, v := range []string{"", "6f1a2b3c-4d5e-4f6a-8b7c-9d0e1f2a3b01", "6F1A2B3C-4D5E-4F6A-8B7C-9D0E1F2A3B01", "6f1a2b3c4d5e4f6a8b7c9d0e1f2a3b01",
		"6f1a2b3c-4d5e-4f6a-8b7c-9d0e1f2a3b0", "6f1a2b3c-4d5e-4f6a-8b7c-9d0e1f2a3b011", "6f1a2b3c_4d5e-4f6a-8b7c-9d0e1f2a3b01", "g f1a2b3c-4d5e-4f6a-8b7c-9d0e1f2a3b0",
		"6f1a2b3c-4d5e-4f6a-8b7c-9d0e1f2a3bé", "--------------------------------====", "00000000-0000-0000-0000-000000000000"} {
		if got, want := isUUID(v), re.MatchString(v); got != want {
			t.Errorf("isUUID(%q) = %v, want %v", v, got, want)
		}
	}
}
