using System.CommandLine;
using RsCapRet.Training;

namespace RsCapRet.Cli.Commands;

/// <summary>`rscapret train --config FILE --out DIR`: an RS-CapRet training run (resumes from DIR/checkpoint).</summary>
public static class TrainCommands
{
    public static Command Build()
    {
        var config = new Option<string>("--config") { Description = "Training config (JSON; see models/configs/)", Required = true };
        var outDir = new Option<string>("--out") { Description = "Run folder: checkpoints, history.csv, training.svg, best/ (the exported model)", Required = true };
        var cmd = new Command("train", "Train an RS-CapRet model (resumable: re-run the same command after a crash)") { config, outDir };
        CommandAction.Set(cmd, async (parse, output, ct) =>
        {
            var cfg = TrainConfig.Load(parse.GetValue(config)!);
            var trainer = new RsCapRetTrainer(cfg, parse.GetValue(outDir)!, line =>
            {
                output.WriteLine($"{DateTime.UtcNow:HH:mm:ss} {line}");
                output.Flush();
            });
            var history = await Task.Run(() => trainer.Run(ct), ct);
            var best = history.MaxBy(h => h.ValTextToImage.Mean);
            await output.WriteLineAsync(best is null ? "no epoch completed" : $"best epoch {best.Epoch}: val text->image {best.ValTextToImage}");
            return 0;
        });
        return cmd;
    }
}
