module github.com/closeloop/closeloop/cmd/closeloop

go 1.26.8

require (
	github.com/closeloop/closeloop/libs v0.0.0
	github.com/closeloop/closeloop/proto v0.0.0
	github.com/closeloop/closeloop/services/dispatch v0.0.0
	github.com/closeloop/closeloop/services/followup v0.0.0
	github.com/closeloop/closeloop/services/intake v0.0.0
	github.com/closeloop/closeloop/services/routing v0.0.0
	github.com/closeloop/closeloop/services/slaclock v0.0.0
)

replace (
	github.com/closeloop/closeloop/libs => ../../libs
	github.com/closeloop/closeloop/proto => ../../proto
	github.com/closeloop/closeloop/services/dispatch => ../../services/dispatch
	github.com/closeloop/closeloop/services/followup => ../../services/followup
	github.com/closeloop/closeloop/services/intake => ../../services/intake
	github.com/closeloop/closeloop/services/routing => ../../services/routing
	github.com/closeloop/closeloop/services/slaclock => ../../services/slaclock
)
