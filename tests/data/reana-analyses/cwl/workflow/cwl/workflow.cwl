#!/usr/bin/env cwl-runner

cwlVersion: v1.0
class: Workflow

inputs:
  count_tool: File
  lines: int

outputs:
  summary:
    type: File
    outputSource: summarise/result

steps:
  generate:
    run: generate.cwl
    in:
      count_tool: count_tool
      lines: lines
    out: [data]
  summarise:
    run: summarise.cwl
    in:
      data: generate/data
    out: [result]
