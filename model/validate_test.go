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

func TestAMACIsTwelveUpperCaseHexDigits(t *testing.T) {
	re := regexp.MustCompile(`^[0-9A-F]{12}$`)
	for _, v := range []string{"", "00AABBCCDDEE", "00aabbccddee", "00AABBCCDDE", "00AABBCCDDEEF", "00:AA:BB:CC:DD", "00AABBCCDDEG", "00AABBCCDDÉ", "00AABBCCDDE\n"} {
		if got, want := isMAC(v), re.MatchString(v); got != want {
			t.Errorf("isMAC(%q) = %v, want %v", v, got, want)
		}
	}
}

func TestANumberIsE164APlusADigitOneToNineThenSixToFourteenDigits(t *testing.T) {
	re := regexp.MustCompile(`^\+[1-9][0-9]{6,14}$`)
	for _, v := range []string{"", "+", "+1", "+1234567", "+12345678", "+123456789012345", "+1234567890123456", "+0123456789", "12345678",
		"+1 2345678", "+1234567a", "+1234567\n", "+١٢٣٤٥٦٧٨"} {
		if got, want := isE164(v), re.MatchString(v); got != want {
			t.Errorf("isE164(%q) = %v, want %v", v, got, want)
		}
	}
}
