cwlVersion: v1.0
class: CommandLineTool

requirements:
  DockerRequirement:
    dockerPull: docker.io/library/bash:5.2

inputs:
  data: File

baseCommand: wc

arguments: ["-l", $(inputs.data.path)]

stdout: summary.txt

outputs:
  result:
    type: stdout
