using RsCapRet.Model;

namespace RsCapRet.Inference;

/// <summary>What a model needs of the tiler: its input side (the tile size) and the resolution it was trained at.</summary>
public sealed record ModelTiling(int InputSize, TrainingResolution? Resolution);
