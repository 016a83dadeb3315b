package protocol

import (
	"fmt"
	"testing"
	"time"
)

func TestBackoff(t *testing.T) {
	lo, hi := 100*time.Millisecond, 5*time.Second
	tests := []struct {
		attempt int
		r       float64
		want    time.Duration
	}{
		{0, 0, lo},
		{0, 0.5, 75 * time.Millisecond},
		{1, 0, 200 * time.Millisecond},
		{5, 0, 3200 * time.Millisecond},
		{5, 0.5, 2400 * time.Millisecond},
		{6, 0, hi},
		{40, 0, hi}, // no overflow
		{1000, 0.5, hi - hi/4},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("attempt %d r %.2f", tt.attempt, tt.r), func(t *testing.T) {
			if got := Backoff(tt.attempt, lo, hi, tt.r); got != tt.want {
				t.Fatalf("Backoff = %v, want %v", got, tt.want)
			}
		})
	}
	for attempt := range 70 {
		step := min(hi, lo<<min(attempt, 20))
		for _, r := range []float64{0, 0.3, 0.999} {
			if d := Backoff(attempt, lo, hi, r); d <= step/2 || d > step {
				t.Fatalf("Backoff(%d, %v) = %v outside (%v, %v]", attempt, r, d, step/2, step)
			}
		}
	}
}
