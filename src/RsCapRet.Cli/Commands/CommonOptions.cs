using System.CommandLine;
using RsCapRet.Core;
using RsCapRet.Inference;
using RsCapRet.Storage;
using EnvironmentSettings = RsCapRet.Core.Configuration.EnvironmentSettings;
using ModelOptions = RsCapRet.Model.ModelOptions;

namespace RsCapRet.Cli.Commands;

/// <summary>Options several commands share, and how their defaults resolve.</summary>
public static class CommonOptions
{
    public static Option<string?> Model() => new("--model")
    {
        Description = "RS-CapRet model folder (rscapret.json + backbones + heads + tokenizer); default $RSCAPRET_MODEL, else models/default",
    };

    public static Option<string> Device() => new("--device")
    {
        Description = "auto (CUDA when available), cpu, or cuda[:N]",
        DefaultValueFactory = _ => "auto",
    };

    public static Option<string?> ChatAdapter() => new("--chat-adapter")
    {
        Description = "Chat adapter folder (chat.json + weights, as a training run's chat/) the chat talks with instead of the model folder's own " +
                      "(search and captions never use it); default $RSCAPRET_CHAT_ADAPTER, else the model folder's",
    };

    /// <summary>--chat-adapter, else RSCAPRET_CHAT_ADAPTER, else null (the model folder's own chat).</summary>
    public static string? ResolveChatAdapter(string? value) =>
        !string.IsNullOrWhiteSpace(value) ? value : EnvironmentSettings.Load<ModelOptions>().ChatAdapterDirectory;

    public static Option<bool> Bf16() => new("--bf16") { Description = "Run the model in bfloat16 (GPU inference)" };

    public static string ResolveModel(string? value)
    {
        if (!string.IsNullOrWhiteSpace(value)) return Path.GetFullPath(value);
        if (EnvironmentSettings.Load<ModelOptions>().ModelDirectory is { } configured) return Path.GetFullPath(configured);
        var root = RepositoryPaths.TryFindRoot() ?? AppContext.BaseDirectory;
        return Path.Combine(root, "models", "default");
    }

    public static RsCapRetTileEncoder LoadEncoder(string? model, string device, bool bf16, string? chatAdapter = null) =>
        RsCapRetTileEncoder.Load(ModelFolder(model), device, bf16, chatAdapter);

    /// <summary>--model or RSCAPRET_MODEL names a model: the process uses that one, whichever model is activated.</summary>
    public static bool ModelPinned(string? value) =>
        !string.IsNullOrWhiteSpace(value) || EnvironmentSettings.Load<ModelOptions>().ModelDirectory is not null;

    /// <summary>
    /// The model folder searches use: --model or RSCAPRET_MODEL when given; else the activated model's recorded folder
    /// (`rscapret models activate`); else models/default. An activated model whose folder is not on this machine is an
    /// error naming it (searching another model would look in other tiles).
    /// </summary>
    public static async Task<string> ServingModelFolderAsync(string? model, CatalogStore store, CancellationToken ct)
    {
        if (ModelPinned(model) || await store.ActiveModelAsync(ct) is not { } active) return ModelFolder(model);
        if (active.Directory is { } dir && File.Exists(Path.Combine(dir, RsCapRet.Model.RsCapRetConfig.FileName))) return Path.GetFullPath(dir);
        var name = (await store.ModelSharesAsync(ct)).FirstOrDefault(m => m.Id == active.Id) is { } m ? $"{m.Name}@{m.Version} (id {m.Id})" : $"id {active.Id}";
        throw new DirectoryNotFoundException($"the activated model {name} is not available on this machine: " +
            (active.Directory is { } d ? $"its folder {d} is missing" : "no folder is recorded for it") +
            "; copy the model folder there, activate another model (rscapret models activate), or pass --model");
    }

    /// <summary>Loads the model searches use (<see cref="ServingModelFolderAsync"/>).</summary>
    public static async Task<RsCapRetTileEncoder> LoadServingEncoderAsync(string? model, string device, bool bf16, CatalogStore store, CancellationToken ct,
        string? chatAdapter = null) =>
        RsCapRetTileEncoder.Load(await ServingModelFolderAsync(model, store, ct), device, bf16, chatAdapter);

    /// <summary>The model folder --model or its default names, checked to be one.</summary>
    public static string ModelFolder(string? model)
    {
        var dir = ResolveModel(model);
        if (!File.Exists(Path.Combine(dir, RsCapRet.Model.RsCapRetConfig.FileName)))
            throw new DirectoryNotFoundException($"{dir}: not an RS-CapRet model folder (no {RsCapRet.Model.RsCapRetConfig.FileName}); pass --model or set RSCAPRET_MODEL");
        return dir;
    }
}
