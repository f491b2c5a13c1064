// Package statetest is the contract suite every state.Store implementation
// passes: Run it from the implementation's tests with a constructor of
// fresh, empty stores.
package statetest
