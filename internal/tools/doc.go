//go:build tools

// Package tools pins module dependencies that are not yet imported by code.
package tools
