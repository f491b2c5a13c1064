package clever

import (
	"context"
	"fmt"
	"net/url"
	"strings"
	"time"

	"gitlab.com/paas-runner/paas-runner/quota"
)

// minMissRefresh is the least age of a cached flavor list before a lookup
// miss may refresh it, so that a job asking for a bogus flavor cannot make
// every poll hit the API.
const minMissRefresh = 10 * time.Second

// Memory is the detailed memory of a flavor.
type Memory struct {
	// Unit is the unit of Value ("B" in practice).
	Unit      string  `json:"unit"`
	Value     float64 `json:"value"`
	Formatted string  `json:"formatted"`
}

// Flavor is a Clever flavor object (only the fields used).
type Flavor struct {
	Name      string  `json:"name"`
	Mem       int     `json:"mem"`
	CPUs      float64 `json:"cpus"`
	Available bool    `json:"available"`
	Memory    *Memory `json:"memory,omitempty"`
}

// MemoryMiB returns the RAM of f in MiB, from the detailed memory field when
// it has a known unit, else from mem (MiB).
func (f Flavor) MemoryMiB() int {
	if f.Memory != nil && f.Memory.Value > 0 {
		var mult float64
		switch strings.ToLower(strings.TrimSpace(f.Memory.Unit)) {
		case "b", "":
			mult = 1
		case "k", "kb", "kib":
			mult = 1 << 10
		case "m", "mb", "mib":
			mult = 1 << 20
		case "g", "gb", "gib":
			mult = 1 << 30
		}
		if mult > 0 {
			return int(f.Memory.Value * mult / (1 << 20))
		}
	}
	return f.Mem
}

// Variant is an instance variant.
type Variant struct {
	ID   string `json:"id"`
	Slug string `json:"slug"`
	Name string `json:"name"`
}

// InstanceType is one entry of /products/instances.
type InstanceType struct {
	Type    string  `json:"type"`
	Version string  `json:"version"`
	Name    string  `json:"name"`
	Enabled bool    `json:"enabled"`
	Variant Variant `json:"variant"`
}

type flavorEntry struct {
	list    []Flavor
	fetched time.Time
}

type instanceEntry struct {
	it      InstanceType
	fetched time.Time
}

// ListFlavors fetches GET /products/flavors?context=<flavorContext> (no
// auth, no cache).
func (c *Client) ListFlavors(ctx context.Context, flavorContext string) ([]Flavor, error) {
	var out []Flavor
	err := c.do(ctx, call{
		method: "GET", endpoint: "/products/flavors", path: "/products/flavors",
		query: url.Values{"context": {flavorContext}}.Encode(),
	}, &out)
	if err != nil {
		return nil, fmt.Errorf("list clever flavors: %w", err)
	}
	return out, nil
}

// FlavorTable returns the available flavors of flavorContext whose API name
// starts with prefix, keyed by the name without the prefix. The list is
// cached for CatalogTTL; when want is not empty and not in the cached table,
// the list is fetched again (a miss refresh, at most every few seconds). A
// failed refresh falls back to a stale list when there is one.
func (c *Client) FlavorTable(ctx context.Context, flavorContext, prefix, want string) (quota.Flavors, error) {
	now := c.opts.Now()
	c.mu.Lock()
	e, ok := c.flavors[flavorContext]
	c.mu.Unlock()
	fresh := ok && now.Sub(e.fetched) < c.opts.CatalogTTL
	if fresh {
		table := flavorTable(e.list, prefix)
		if _, hit := table[want]; want == "" || hit || now.Sub(e.fetched) < minMissRefresh {
			return table, nil
		}
	}
	list, err := c.ListFlavors(ctx, flavorContext)
	if err != nil {
		if ok {
			c.log.WithField("error", err).Warn("refreshing clever flavors failed; using the cached list")
			return flavorTable(e.list, prefix), nil
		}
		return nil, err
	}
	c.mu.Lock()
	c.flavors[flavorContext] = flavorEntry{list: list, fetched: now}
	c.mu.Unlock()
	return flavorTable(list, prefix), nil
}

func flavorTable(list []Flavor, prefix string) quota.Flavors {
	out := quota.Flavors{}
	for _, f := range list {
		if !f.Available || !strings.HasPrefix(f.Name, prefix) || len(f.Name) == len(prefix) {
			continue
		}
		name := strings.TrimPrefix(f.Name, prefix)
		out[name] = quota.Flavor{Name: name, APIName: f.Name, MemoryMiB: f.MemoryMiB(), CPUs: f.CPUs}
	}
	return out
}

// ListInstanceTypes fetches GET /products/instances (no auth, no cache).
func (c *Client) ListInstanceTypes(ctx context.Context) ([]InstanceType, error) {
	var out []InstanceType
	if err := c.do(ctx, call{method: "GET", endpoint: "/products/instances", path: "/products/instances"}, &out); err != nil {
		return nil, fmt.Errorf("list clever instance types: %w", err)
	}
	return out, nil
}

// DockerInstanceType returns the first enabled instance type named "Docker",
// cached for CatalogTTL (see InvalidateInstanceType).
func (c *Client) DockerInstanceType(ctx context.Context) (InstanceType, error) {
	now := c.opts.Now()
	c.mu.Lock()
	e := c.instance
	c.mu.Unlock()
	if e != nil && now.Sub(e.fetched) < c.opts.CatalogTTL {
		return e.it, nil
	}
	list, err := c.ListInstanceTypes(ctx)
	if err != nil {
		if e != nil {
			c.log.WithField("error", err).Warn("refreshing the clever instance type failed; using the cached one")
			return e.it, nil
		}
		return InstanceType{}, err
	}
	for _, it := range list {
		if it.Name == "Docker" && it.Enabled {
			c.mu.Lock()
			c.instance = &instanceEntry{it: it, fetched: now}
			c.mu.Unlock()
			return it, nil
		}
	}
	return InstanceType{}, fmt.Errorf("find clever Docker instance type: none among %d instance types", len(list))
}

// InvalidateInstanceType drops the cached instance type (after a 9017 "the
// specified instance does not exist").
func (c *Client) InvalidateInstanceType() {
	c.mu.Lock()
	c.instance = nil
	c.mu.Unlock()
}
