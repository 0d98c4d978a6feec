# All samples: one line per sample (events kept), then the total, under a label.
cwlVersion: v1.2
class: CommandLineTool
requirements:
  DockerRequirement:
    dockerPull: docker.io/library/python:3.11-slim
baseCommand: [bash, -c]
arguments:
  - |
    label="$0"
    echo "# $label" > summary.txt
    total=0
    for f in "$@"; do
      n=`wc -l < "$f"`
      echo "`basename "$f"` $n" >> summary.txt
      total=`expr $total + $n`
    done
    echo "total $total" >> summary.txt
  - $(inputs.label)
inputs:
  label: string
  selected:
    type: File[]
    inputBinding: {position: 1}
outputs:
  summary:
    type: File
    outputBinding: {glob: summary.txt}
