"""Volume spec parsing, kept importable here; it lives in ffn.utils.volumes."""

from ffn.utils.volumes import open_hdf5_dataset as open_volume  # pylint: disable=unused-import
from ffn.utils.volumes import VolumeSpec, VolumeSpecError, parse_named_volume_specs, parse_volume_spec  # pylint: disable=unused-import
