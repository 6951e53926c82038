<#
.SYNOPSIS
  Installs or removes rasmon-agent as a Windows service on an RD Session Host.

.DESCRIPTION
  Windows services must answer the Service Control Manager, which node.exe does not do by itself,
  so the service is run by WinSW (https://github.com/winsw/winsw, a single signed executable):
  pass its path with -WinSW. The script copies it next to a generated rasmon-agent.xml in
  -InstallDir, registers the service to start automatically and to restart after a failure, and
  locks the token file down to SYSTEM and Administrators.

.EXAMPLE
  .\install-service.ps1 -WinSW C:\Temp\WinSW-x64.exe -Config C:\ProgramData\rasmon\agent.yaml
.EXAMPLE
  .\install-service.ps1 -Uninstall
#>
[CmdletBinding(DefaultParameterSetName = 'Install')]
param(
  [Parameter(ParameterSetName = 'Install', Mandatory = $true)] [string] $WinSW,
  [Parameter(ParameterSetName = 'Install', Mandatory = $true)] [string] $Config,
  [Parameter(ParameterSetName = 'Install')] [string] $Node = (Get-Command node.exe -ErrorAction SilentlyContinue).Source,
  [Parameter(ParameterSetName = 'Install')] [string] $AgentDir = (Resolve-Path (Join-Path $PSScriptRoot '..')).Path,
  [string] $InstallDir = (Join-Path $env:ProgramData 'rasmon\service'),
  [string] $ServiceName = 'rasmon-agent',
  [Parameter(ParameterSetName = 'Uninstall', Mandatory = $true)] [switch] $Uninstall
)
$ErrorActionPreference = 'Stop'

$principal = New-Object Security.Principal.WindowsPrincipal([Security.Principal.WindowsIdentity]::GetCurrent())
if (-not $principal.IsInRole([Security.Principal.WindowsBuiltInRole]::Administrator)) {
  throw 'Run this script from an elevated PowerShell (as Administrator).'
}
$wrapper = Join-Path $InstallDir "$ServiceName.exe"

if ($Uninstall) {
  if (Test-Path $wrapper) {
    & $wrapper stop | Out-Null
    & $wrapper uninstall
  } elseif (Get-Service $ServiceName -ErrorAction SilentlyContinue) {
    throw "$ServiceName is registered, but $wrapper is missing: remove it with 'sc.exe delete $ServiceName'."
  }
  Remove-Item -Recurse -Force $InstallDir -ErrorAction SilentlyContinue
  Write-Host "$ServiceName removed. Its configuration, token and spool were left in place."
  return
}

if (-not $Node) { throw 'node.exe was not found on the PATH: pass -Node C:\path\to\node.exe (Node.js 20 or later).' }
if (-not (Test-Path $WinSW)) { throw "WinSW executable not found: $WinSW" }
$Config = (Resolve-Path $Config).Path
$cli = Join-Path $AgentDir 'bin\rasmon-agent.js'
if (-not (Test-Path $cli)) { throw "rasmon-agent not found at $cli: pass -AgentDir (the agent package folder, built)." }

# Check the configuration before registering anything: `sessions` reads it and the host's sessions.
& $Node $cli sessions --config $Config | Out-Null
if ($LASTEXITCODE -ne 0) { throw "rasmon-agent sessions --config $Config failed (exit $LASTEXITCODE); fix the configuration first." }

# The token file is a secret: SYSTEM (the service account) and Administrators only.
$tokenLine = Select-String -Path $Config -Pattern '^\s*tokenFile:\s*[''"]?([^''"#]+?)[''"]?\s*(#.*)?$' | Select-Object -First 1
if ($tokenLine) {
  $tokenFile = $tokenLine.Matches[0].Groups[1].Value.Trim()
  if (Test-Path $tokenFile) { & icacls.exe $tokenFile /inheritance:r /grant:r 'SYSTEM:R' 'Administrators:F' | Out-Null }
}

New-Item -ItemType Directory -Force -Path $InstallDir | Out-Null
Copy-Item -Force $WinSW $wrapper
$xml = @"
<service>
  <id>$ServiceName</id>
  <name>rasmon agent</name>
  <description>Streams RD Session Host sessions to the rasmon collector (Parallels RAS license monitoring).</description>
  <executable>$([Security.SecurityElement]::Escape($Node))</executable>
  <arguments>"$([Security.SecurityElement]::Escape($cli))" --config "$([Security.SecurityElement]::Escape($Config))"</arguments>
  <startmode>Automatic</startmode>
  <delayedAutoStart>true</delayedAutoStart>
  <onfailure action="restart" delay="10 sec"/>
  <onfailure action="restart" delay="60 sec"/>
  <resetfailure>1 hour</resetfailure>
  <stoptimeout>15 sec</stoptimeout>
  <log mode="roll-by-size"><sizeThreshold>10240</sizeThreshold><keepFiles>5</keepFiles></log>
</service>
"@
Set-Content -Encoding UTF8 -Path (Join-Path $InstallDir "$ServiceName.xml") -Value $xml
& $wrapper install
& $wrapper start
Write-Host "$ServiceName installed and started. Logs: $InstallDir\$ServiceName.out.log"
