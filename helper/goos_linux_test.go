package helper

const isLinux = true
