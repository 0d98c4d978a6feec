#!/bin/sh
# count.sh N OUT: write N numbered lines to OUT
seq "$1" > "$2"
