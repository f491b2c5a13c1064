package executortest

import (
	"slices"
	"strconv"
	"strings"
	"sync"

	"gitlab.com/paas-runner/paas-runner/executors"
)

// Cloud is the in-memory "remote side" of Fake executors: the resources
// that exist, whatever the executor object that created them. Several
// Fakes (several runners, or one runner "restarted") may share a Cloud. It
// is safe for concurrent use.
type Cloud struct {
	mu        sync.Mutex
	nextID    int
	resources map[string]*cloudResource // by name
	// counters by name prefix are computed from history.
	history []event
}

type cloudResource struct {
	id       string
	name     string
	weight   float64
	jobID    int64
	launched bool
	exited   bool
	exitCode int
}

type eventKind int

const (
	evCreated eventKind = iota
	evDeleted
	evLaunched
)

type event struct {
	kind eventKind
	name string
}

// NewCloud returns an empty cloud.
func NewCloud() *Cloud {
	return &Cloud{resources: make(map[string]*cloudResource)}
}

// defaultCloud backs the executors built through the executors registry
// (executors.New with executor = "fake").
var defaultCloud = NewCloud()

// DefaultCloud returns the Cloud of the Fakes built through the executors
// registry (kind config.ExecutorFake). Tests that need isolation build
// their Fakes with NewFake and their own Cloud instead.
func DefaultCloud() *Cloud { return defaultCloud }

// create adds a resource; it fails when the name exists.
func (c *Cloud) create(name string, weight float64, jobID int64) (*cloudResource, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.resources[name]; ok {
		return nil, false
	}
	c.nextID++
	r := &cloudResource{id: "fake-" + strconv.Itoa(c.nextID), name: name, weight: weight, jobID: jobID}
	c.resources[name] = r
	c.history = append(c.history, event{evCreated, name})
	return r, true
}

// get returns a copy of the resource called name.
func (c *Cloud) get(name string) (cloudResource, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	r, ok := c.resources[name]
	if !ok {
		return cloudResource{}, false
	}
	return *r, true
}

// launch marks the resource launched; false when it does not exist or id
// does not match (a resource of the same name created later). already
// reports whether it was launched before.
func (c *Cloud) launch(name, id string) (ok, already bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	r, found := c.resources[name]
	if !found || r.id != id {
		return false, false
	}
	if r.launched {
		return true, true
	}
	r.launched = true
	c.history = append(c.history, event{evLaunched, name})
	return true, false
}

// delete removes the resource if it exists with that id; it reports
// whether something was deleted.
func (c *Cloud) delete(name, id string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	r, ok := c.resources[name]
	if !ok || (id != "" && r.id != id) {
		return false
	}
	delete(c.resources, name)
	c.history = append(c.history, event{evDeleted, name})
	return true
}

// Kill makes the resource's job die (exit code 137): Check then reports
// Exited; the resource still exists and must be decommissioned. It reports
// whether the resource exists.
func (c *Cloud) Kill(name string) bool { return c.Exit(name, 137) }

// Exit makes the resource's job end with code: Check then reports Exited.
// It reports whether the resource exists.
func (c *Cloud) Exit(name string, code int) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	r, ok := c.resources[name]
	if !ok {
		return false
	}
	r.exited, r.exitCode = true, code
	return true
}

// Vanish deletes the resource behind the executor's back (an operator, a
// PAAS clean-up): Check then reports Gone. It does not count as a
// decommission. It reports whether the resource existed.
func (c *Cloud) Vanish(name string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.resources[name]; !ok {
		return false
	}
	delete(c.resources, name)
	return true
}

// Names returns the names of the existing resources starting with prefix
// ("" for all), sorted.
func (c *Cloud) Names(prefix string) []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	var names []string
	for name := range c.resources {
		if strings.HasPrefix(name, prefix) {
			names = append(names, name)
		}
	}
	slices.Sort(names)
	return names
}

// Live returns the number of existing resources starting with prefix.
func (c *Cloud) Live(prefix string) int { return len(c.Names(prefix)) }

func (c *Cloud) count(kind eventKind, prefix string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	for _, e := range c.history {
		if e.kind == kind && strings.HasPrefix(e.name, prefix) {
			n++
		}
	}
	return n
}

// Provisioned returns how many resources starting with prefix were ever
// created (including those whose Provision then failed).
func (c *Cloud) Provisioned(prefix string) int { return c.count(evCreated, prefix) }

// Decommissioned returns how many resources starting with prefix were
// deleted by a Decommission (repeated decommissions of a resource already
// gone and Vanish do not count).
func (c *Cloud) Decommissioned(prefix string) int { return c.count(evDeleted, prefix) }

// LaunchCount returns how many resources starting with prefix were
// launched (a repeated Launch does not count).
func (c *Cloud) LaunchCount(prefix string) int { return c.count(evLaunched, prefix) }

// liveness of a resource for Check.
func (r cloudResource) status() executors.Status {
	if r.exited {
		return executors.Status{Liveness: executors.Exited, ExitCode: r.exitCode}
	}
	return executors.Status{Liveness: executors.Alive}
}
