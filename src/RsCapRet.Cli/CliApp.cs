using System.CommandLine;
using RsCapRet.Cli.Commands;

namespace RsCapRet.Cli;

/// <summary>The `rscapret` command: one sub-command per job users run by hand or from scripts.</summary>
public static class CliApp
{
    public static RootCommand BuildRoot()
    {
        var root = new RootCommand("RsCapRet.Pipeline: caption, embed and search remote-sensing imagery (RS-CapRet) in PostGIS + pgvector.");
        foreach (var command in new[]
                 {
                     DbCommands.Build(),
                     SearchCommands.Build(),
                     ChangeCommands.Build(),
                     ClassifyCommands.Build(),
                     CalibrateCommands.Build(),
                     LocalizeCommands.Build(),
                     ExportCommands.Build(),
                     ChatCommands.Build(),
                     ScenesCommands.Build(),
                     ModelsCatalogCommands.Models(), ModelsCatalogCommands.Reindex(),
                 }.Concat(TrainCommands.Build()).Concat(SceneCommands.Build()).Concat(ModelCommands.Build()).Concat(EvaluationCommands.Build()).Concat(DemoCommands.Build()).Concat(HostCommands.Build()))
            root.Subcommands.Add(command);
        return root;
    }

    public static async Task<int> RunAsync(string[] args, TextWriter? stdout = null, TextWriter? stderr = null)
    {
        var config = new InvocationConfiguration
        {
            Output = stdout ?? Console.Out,
            Error = stderr ?? Console.Error,
            // Our actions report their own errors (CommandAction.Run); anything else is a bug worth a trace.
            EnableDefaultExceptionHandler = true,
        };
        var parse = BuildRoot().Parse(args);
        // A command line that does not parse gets one line naming the option, not the library's messages and help.
        if (UsageErrors.Describe(parse) is { } usageError)
        {
            await config.Error.WriteLineAsync(usageError);
            return CommandAction.UserError;
        }
        // Bad settings are refused before any command runs: one line per bad value.
        if (ConfigurationCheck.Problems() is { Count: > 0 } problems)
        {
            foreach (var problem in problems) await config.Error.WriteLineAsync($"error: {problem}");
            return CommandAction.UserError;
        }
        return await parse.InvokeAsync(config);
    }
}
