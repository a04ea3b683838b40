module github.com/softquantus/qcos-go

go 1.19
