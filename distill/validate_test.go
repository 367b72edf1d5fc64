package distill

import (
	"math"
	"strings"
	"testing"
)

func TestValidateNumbers(t *testing.T) {
	cases := []struct {
		name   string
		set    func(c *Config)
		want   string // "" = accepted
		reason string
	}{
		{"zero values", func(c *Config) {}, "", "zero means the documented default everywhere"},
		{"paper settings", func(c *Config) { c.LR, c.MinLR, c.SaveEvery, c.KeepLast = 2e-4, 4.5e-7, 500, 2 }, "", "README's distill example"},
		{"constant lr", func(c *Config) { c.LR, c.MinLR = 1e-3, 1e-3 }, "", "MinLR = LR is a flat schedule"},
		{"negative lr", func(c *Config) { c.LR = -1e-4 }, "LR must be a positive learning rate, got -0.0001", "gradient ascent"},
		{"nan lr", func(c *Config) { c.LR = math.NaN() }, "LR must be a positive learning rate", "NaN poisons every weight"},
		{"inf lr", func(c *Config) { c.LR = math.Inf(1) }, "LR must be a positive learning rate", "the first step destroys the model"},
		{"negative min lr", func(c *Config) { c.MinLR = -1 }, "MinLR must be a positive learning rate", "the schedule's tail would be ascent"},
		{"min above lr", func(c *Config) { c.LR, c.MinLR = 1e-5, 1e-3 }, "MinLR 0.001 is above LR 1e-05", "a decay that rises"},
		{"negative save-every", func(c *Config) { c.SaveEvery = -5 }, "SaveEvery must be ≥ 0, got -5", "silently never saves"},
		{"negative keep-last", func(c *Config) { c.KeepLast = -1 }, "KeepLast must be ≥ 0, got -1", "silently keeps all or none"},
		{"negative val-every", func(c *Config) { c.ValEvery = -2 }, "ValEvery must be ≥ 0", "silently never validates"},
		{"negative log-every", func(c *Config) { c.LogEvery = -3 }, "LogEvery must be ≥ 0", "logs every |n| steps by accident"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var c Config
			tc.set(&c)
			err := c.validateNumbers()
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("refused: %v (%s)", err, tc.reason)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Fatalf("got %v; want %q (%s)", err, tc.want, tc.reason)
			}
		})
	}
}
