using System.Text.Json;
using RsCapRet.Model.Checkpoints;
using TorchSharp;
using static TorchSharp.torch;

namespace RsCapRet.Model;

/// <summary>
/// A vision encoder RS-CapRet can sit on: pixel values in, one pooled vector per image out. The heads see only
/// <see cref="HiddenSize"/>; how pixels are prepared is the backbone's own (<see cref="Preprocessor"/>).
/// </summary>
public abstract class VisionBackbone : nn.Module
{
    protected VisionBackbone(string name) : base(name) { }

    /// <summary>Width of the pooled vector.</summary>
    public abstract int HiddenSize { get; }

    /// <summary>Side of the square input the backbone was built for.</summary>
    public abstract int ImageSize { get; }

    /// <summary>The registry name of the architecture (config.json "architecture" / Hugging Face model_type).</summary>
    public abstract string Architecture { get; }

    /// <summary>How an RGB image becomes this backbone's pixel values, at <paramref name="size"/> (default: <see cref="ImageSize"/>).</summary>
    public abstract ImagePreprocessor Preprocessor(int? size = null);

    /// <summary>Pooled vectors [B, HiddenSize] for pixel values [B, 3, H, W].</summary>
    public abstract Tensor Pooled(Tensor pixels);

    /// <summary>
    /// The per-position features the pooled vector is the mean of: [B, HiddenSize, h, w] (ResNet: the last stage
    /// before global average pooling, 7 × 7 at 224 px). Backbones whose pooled vector is not such a mean (CLIP ViT:
    /// the post-layernorm CLS token) throw <see cref="CellVectorsNotAvailableException"/>.
    /// </summary>
    public virtual Tensor PositionFeatures(Tensor pixels) => throw new CellVectorsNotAvailableException(Architecture);

    /// <summary>Writes config.json and model.safetensors so <see cref="VisionBackbones.FromPretrained"/> reads them back.</summary>
    public abstract void SavePretrained(string directory);
}

/// <summary>Cell vectors (<see cref="VisionBackbone.PositionFeatures"/>) asked of a backbone that has none.</summary>
public sealed class CellVectorsNotAvailableException(string architecture)
    : InvalidOperationException($"cell vectors are not available for this backbone ({architecture}): its image vector is not a mean over positions (ResNet backbones have them)");

/// <summary>
/// The registry of vision backbones, as torchvision keeps one: a checkpoint folder's config.json names its family
/// (CLIP ViT in Hugging Face layout, or the project's ResNet layout), and named architectures give ready configs.
/// </summary>
public static class VisionBackbones
{
    /// <summary>A model or training config names an imported backbone as "backbone:NAME" instead of a path.</summary>
    public const string NamedPrefix = "backbone:";

    /// <summary>Where imported backbones live: $RSCAPRET_BACKBONES, else models/backbones in the checkout.</summary>
    public static string BackbonesDirectory() =>
        Core.Configuration.EnvironmentSettings.Load<ModelOptions>().BackbonesDirectory is { } configured ? Path.GetFullPath(configured)
            : Path.Combine(RsCapRet.Core.RepositoryPaths.FindRoot(), "models", "backbones");

    /// <summary>"backbone:NAME" → the imported folder; anything else is a path relative to <paramref name="baseDirectory"/>.</summary>
    public static string Resolve(string reference, string baseDirectory) =>
        reference.StartsWith(NamedPrefix, StringComparison.Ordinal) ? Path.Combine(BackbonesDirectory(), reference[NamedPrefix.Length..])
            : Path.IsPathRooted(reference) ? reference : Path.GetFullPath(Path.Combine(baseDirectory, reference));

    /// <summary>Loads a backbone folder (config.json + model.safetensors), choosing the family from config.json.</summary>
    public static VisionBackbone FromPretrained(string directory, Device? device = null, ScalarType dtype = ScalarType.Float32)
    {
        RequireFolder(directory);
        return FamilyOf(directory) switch
        {
            ResNetConfig.Family => ResNetVisionModel.FromPretrained(directory, device, dtype),
            _ => ClipVisionModel.FromPretrained(directory, device, dtype),
        };
    }

    /// <summary>The side of the square input a backbone folder was built for, from its config.json (no weights are read).</summary>
    public static int ImageSizeOf(string directory)
    {
        RequireFolder(directory);
        var config = Path.Combine(directory, "config.json");
        return FamilyOf(directory) switch
        {
            ResNetConfig.Family => ResNetVisionModel.ReadConfig(config).ImageSize,
            _ => ClipVisionModel.ReadVisionConfig(config).Tower.ImageSize,
        };
    }

    private static void RequireFolder(string directory) =>
        Import.ImportedFolders.Require(directory, "vision backbone", Import.ResNetOnnxImporter.Sources.ContainsKey);

    /// <summary>"resnet" for the project's ResNet layout, "clip" for a Hugging Face CLIP vision checkpoint.</summary>
    public static string FamilyOf(string directory)
    {
        var path = Path.Combine(directory, "config.json");
        if (!File.Exists(path)) throw new CheckpointException(path, "does not exist (a vision backbone folder holds config.json and model.safetensors)");
        try
        {
            using var doc = JsonDocument.Parse(File.ReadAllText(path));
            return doc.RootElement.ValueKind == JsonValueKind.Object && doc.RootElement.TryGetProperty("model_type", out var t)
                   && t.ValueKind == JsonValueKind.String && t.GetString() == ResNetConfig.Family ? ResNetConfig.Family : "clip";
        }
        catch (JsonException e)
        {
            throw new CheckpointException(path, "is not valid JSON: " + e.Message, e);
        }
    }

    /// <summary>Named architectures with their fixed shapes (weights come from a checkpoint or an importer).</summary>
    public static IReadOnlyDictionary<string, ResNetConfig> Architectures { get; } = new Dictionary<string, ResNetConfig>
    {
        // The ImageNet ResNet18 of NuGet Microsoft.ML.DnnImageFeaturizer.ResNet18 0.23.1 (a CNTK 2.6 export):
        // not torchvision's — its last stage has three blocks, and its paddings are CNTK's (begin-heavy).
        ["resnet18-imagenet"] = new ResNetConfig
        {
            Architecture = "resnet18-imagenet", Blocks = [2, 2, 2, 3], Widths = [64, 128, 256, 512],
            StemPadding = [3, 3, 2, 2], DownsamplePadding = [1, 1, 0, 0], PoolPadding = [1, 1, 0, 0],
            BatchNormEps = 9.9999997e-06, ImageSize = 224,
        },
    };
}
