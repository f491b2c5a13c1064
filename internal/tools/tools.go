//go:build tools

// Package tools pins module dependencies that are not yet imported by code.
package tools
import (
 _ "gitlab.com/gitlab-org/api/client-go"
 _ "github.com/BurntSushi/toml"
 _ "github.com/go-git/go-git/v5"
 _ "github.com/hashicorp/go-retryablehttp"
 _ "github.com/sirupsen/logrus"
 _ "github.com/urfave/cli/v2"
 _ "github.com/prometheus/client_golang/prometheus"
 _ "github.com/stretchr/testify/require"
 _ "github.com/coreos/go-systemd/v22/daemon"
 _ "go.uber.org/goleak"
)
import _ "github.com/moby/moby/client"
import _ "github.com/prometheus/client_golang/prometheus/testutil/promlint"
