//go:build tools

package tools

import (
	_ "github.com/BurntSushi/toml"
	_ "github.com/coreos/go-systemd/v22/daemon"
	_ "github.com/go-git/go-git/v5"
	_ "github.com/hashicorp/go-retryablehttp"
	_ "github.com/prometheus/client_golang/prometheus"
	_ "github.com/sirupsen/logrus"
	_ "github.com/stretchr/testify/require"
	_ "github.com/urfave/cli/v2"
	_ "gitlab.com/gitlab-org/api/client-go"
	_ "go.uber.org/goleak"
)
import _ "github.com/moby/moby/client"
import _ "github.com/prometheus/client_golang/prometheus/testutil/promlint"
