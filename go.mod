module github.com/fxws/websocket

go 1.26

require (
	github.com/gobwas/ws v1.5.0
	github.com/google/uuid v1.6.0
	go.uber.org/zap v1.28.0
)

require (
	github.com/gobwas/httphead v0.1.0 // indirect
	go.uber.org/multierr v1.10.0 // indirect
)
