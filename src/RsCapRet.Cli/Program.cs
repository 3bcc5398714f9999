using RsCapRet.Cli;

return await CliApp.RunAsync(args);
