using RsCapRet.Model.Checkpoints;
using static TorchSharp.torch;

namespace RsCapRet.Model;

/// <summary>
/// Copies a vision backbone folder, optionally storing its weights as float16 (half the size; what a committed
/// backbone uses). The copy loads like the original: weights are float32 inside the model whatever the file holds.
/// </summary>
public static class VisionBackboneCopy
{
    /// <summary>The largest magnitude float16 holds; a tensor with larger values would turn into infinities.</summary>
    private const float Float16Max = 65504f;

    /// <summary>
    /// Writes <paramref name="from"/>'s backbone to <paramref name="to"/>; with <paramref name="float16"/>, each tensor
    /// is stored as float16 unless its values lie beyond float16's range. Returns the tensors kept float32.
    /// </summary>
    public static IReadOnlyList<string> Write(string from, string to, bool float16)
    {
        // Writing over the folder being read would lose the weights.
        if (Path.GetFullPath(from) == Path.GetFullPath(to)) throw new ArgumentException($"{Path.GetFullPath(to)} is the source folder", nameof(to));
        using (var backbone = VisionBackbones.FromPretrained(from)) backbone.SavePretrained(to);
        if (!float16) return [];
        var file = Path.Combine(to, "model.safetensors");
        var tensors = new List<(string, Tensor)>();
        var kept = new List<string>();
        try
        {
            using (var ckpt = Checkpoint.Open(file))
                foreach (var name in ckpt.TensorNames)
                {
                    var t = ckpt.Read(name);
                    if (t.abs().max().item<float>() <= Float16Max) t = t.to_type(ScalarType.Float16);
                    else kept.Add(name);
                    tensors.Add((name, t));
                }
            SafetensorsWriter.Write(file + ".tmp", tensors, new Dictionary<string, string> { ["format"] = "pt" });
            File.Move(file + ".tmp", file, overwrite: true);
        }
        finally
        {
            foreach (var (_, t) in tensors) t.Dispose();
        }
        return kept;
    }
}
