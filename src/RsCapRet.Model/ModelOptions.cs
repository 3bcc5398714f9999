using RsCapRet.Core.Configuration;

namespace RsCapRet.Model;

/// <summary>Which model a process runs and where (the CLI's --model and --device override these where a command has them).</summary>
public sealed class ModelOptions
{
    /// <summary>The model folder; null: the activated model (`rscapret models activate`), else models/default.</summary>
    [EnvironmentVariable("RSCAPRET_MODEL")]
    public string? ModelDirectory { get; init; }

    /// <summary>Device of worker processes: auto (CUDA when available), cpu, cuda[:N].</summary>
    [EnvironmentVariable("RSCAPRET_DEVICE")]
    public string Device { get; init; } = "auto";

    /// <summary>
    /// A chat adapter folder the chat talks with instead of the model folder's own (a training run's chat/); null:
    /// the folder's. Search and captions never use it.
    /// </summary>
    [EnvironmentVariable("RSCAPRET_CHAT_ADAPTER")]
    public string? ChatAdapterDirectory { get; init; }

    /// <summary>Where imported backbones live; null: models/backbones in the checkout.</summary>
    [EnvironmentVariable("RSCAPRET_BACKBONES")]
    public string? BackbonesDirectory { get; init; }
}
