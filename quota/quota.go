package quota

// SKELETON: the quota helper fills this package; names here are the
// contract others code against (add, never remove/rename).

import "math"

// Flavor is one instance size.
type Flavor struct {
	// Name is the user-facing name (XS, M, 3XL).
	Name string
	// APIName is the backend's name (heptapod-runner-M).
	APIName string
	// MemoryMiB is the RAM in MiB.
	MemoryMiB int
	// CPUs is the number of vCPUs.
	CPUs float64
}

// Weight returns (RAM GiB)^1.25.
func (f Flavor) Weight() float64 {
	return math.Pow(float64(f.MemoryMiB)/1024, 1.25)
}

// Flavors maps user-facing names to flavors.
type Flavors map[string]Flavor
