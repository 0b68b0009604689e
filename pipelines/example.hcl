# Example pipeline: ingests the Acme Rockets example catalog in
# testdata/catalog/ with the five builtin stages, in Backstage's default order.
# `make run` loads every *.hcl file of this folder.

# Engine-wide settings (the block and each setting are optional).
engine {
  workers    = 2   # entities processed concurrently; default: number of CPUs
  batch_size = 500 # processed entities written per database transaction
}

# A pipeline: the root locations to read and the stages that process every
# entity found under them. The label ("example") names it in logs and in the
# /api/pipeline endpoints.
pipeline "example" {
  # File reads (locations, $text/$json/$yaml placeholders) are confined to
  # these folders. Relative paths resolve against this file's folder.
  allow_files = ["../testdata/catalog"]

  # A root location. It becomes a Location entity; reading it yields the
  # entities of catalog-info.yaml, whose own Location targets are followed in
  # turn. The target resolves against this file's folder, like allow_files.
  location "file" {
    target = "../testdata/catalog/catalog-info.yaml"
  }

  # Stages run in the order written here, for every entity.
  stage "placeholders" {}      # resolves $text / $json / $yaml
  stage "builtin-kinds" {}     # validates the builtin kinds, emits their relations
  stage "file" {}              # reads `file` locations
  stage "url" {}               # reads `url` locations
  stage "annotate-location" {} # adds backstage.io/managed-by-location and friends
}
