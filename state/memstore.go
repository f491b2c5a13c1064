package state

import (
	"context"
	"sync"
	"time"
)

// MemStore is an in-memory Store, for tests and for runs without
// state_file: nothing survives the process. Sync returns at once.
type MemStore struct {
	mu     sync.Mutex
	jobs   map[Key]Job // guarded by mu
	closed bool        // guarded by mu
}

var _ Store = (*MemStore)(nil)

// NewMemory returns an empty MemStore.
func NewMemory() *MemStore { return &MemStore{jobs: map[Key]Job{}} }

// Load implements Store.
func (m *MemStore) Load() (*File, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return snapshotLocked(m.jobs, time.Time{}), nil
}

// Put implements Store.
func (m *MemStore) Put(j Job) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if !m.closed {
		m.jobs[j.Key()] = j.clone()
	}
}

// Delete implements Store.
func (m *MemStore) Delete(k Key) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if !m.closed {
		delete(m.jobs, k)
	}
}

// Sync implements Store.
func (m *MemStore) Sync(context.Context) error { return nil }

// Close implements Store.
func (m *MemStore) Close(context.Context) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.closed = true
	return nil
}
