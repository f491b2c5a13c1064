package state

import "gitlab.com/paas-runner/paas-runner/config"

// HeptapodRunners returns the map ImportHeptapod and WithHeptapodRunners
// take: each runner's Heptapod name (token[:8]) → its short id. A Heptapod
// name shared by several runners (glrt- tokens, reference §12 item 32) is
// left out: jobs recorded under it cannot be attributed and are imported as
// "heptapod:<name>" (see ImportHeptapod).
func HeptapodRunners(runners []config.Runner) map[string]string {
	m := make(map[string]string, len(runners))
	ambiguous := map[string]bool{}
	for i := range runners {
		r := &runners[i]
		name, id := r.HeptapodName(), r.ShortID()
		if prev, ok := m[name]; ok && prev != id {
			ambiguous[name] = true
		}
		m[name] = id
	}
	for name := range ambiguous {
		delete(m, name)
	}
	return m
}
