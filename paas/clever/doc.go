// Package clever is a typed client of the Clever Cloud v2 API, limited to
// what the clever-docker executor needs: the flavor and instance-type
// catalogues (cached), and the lifecycle of one application per job (create,
// set env, get, list, delete).
//
// Every request has a per-attempt timeout; 408, 429, 5xx and network errors
// are retried with exponential back-off honouring Retry-After, other 4xx are
// not. Failed calls return *APIError (read it with errors.As), which carries
// the Clever error id and message but never a credential. Application
// creation is not blindly retried: after an ambiguous failure the client
// looks the application up by its unique name before creating it again.
package clever
