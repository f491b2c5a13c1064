package clever

import "gitlab.com/paas-runner/paas-runner/quota"

// flavorWeight is the weight of a flavor of mib MiB of RAM.
func flavorWeight(mib int) float64 { return quota.Flavor{MemoryMiB: mib}.Weight() }
