package dispatcher

import (
	"math/rand/v2"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"gitlab.com/paas-runner/paas-runner/coordinator/gitlabfake"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m, goleak.IgnoreTopFunction("net/http.(*persistConn).writeLoop"),
		goleak.IgnoreTopFunction("net/http.(*persistConn).readLoop"),
		goleak.IgnoreTopFunction("internal/poll.runtime_pollWait"))
}

func TestDrainMixedFlavors(t *testing.T) {
	h := newHarness(t, harnessOpts{concurrent: 12, provisioning: 4, refFlavor: "3XL", refJobs: 3})
	flavors := []string{"XS", "S", "M", "L", "XL", "2XL", "3XL", ""}
	rng := rand.New(rand.NewPCG(1, 2))
	var ids []int64
	for range 300 {
		ids = append(ids, h.enqueue(flavors[rng.IntN(len(flavors))]))
	}
	h.start()
	h.waitJobs(ids, 60*time.Second, final)
	h.waitIdle(10 * time.Second)
	for _, id := range ids {
		j, _ := h.gl.Job(id)
		require.Equal(t, gitlabfake.StateSuccess, j.State, "job %d", id)
	}
	require.Equal(t, 300, h.fake.Provisioned())
	require.Equal(t, 0, h.cloud.Live(h.prefix()), "resources left: %v", h.cloud.Names(h.prefix()))
	require.Equal(t, 300, h.cloud.Decommissioned(h.prefix()))
	h.requireInvariants()
	h.mu.Lock()
	require.Equal(t, 4, h.maxProv, "the provisioning cap was reached")
	require.Greater(t, h.maxWeight, h.d.Snapshot().Ledger.WeightQuota/2, "the weighted quota was under pressure")
	h.mu.Unlock()
	require.NoError(t, h.stop())
	s := h.d.Snapshot()
	require.Zero(t, s.Ledger.Jobs)
	require.Zero(t, s.Ledger.WeightUsed)
	require.Zero(t, s.Ledger.Provisioning)
}
