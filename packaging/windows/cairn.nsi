; Installer for cairn on 64-bit Windows 10/11, built by scripts/package-windows.sh with
; Debian's NSIS: makensis -DVERSION=x.y.z -DSTAGE=<dir with cairn.exe> -DOUTFILE=<setup.exe>
; A 64-bit installer: cairn itself runs only on 64-bit Windows.
Target amd64-unicode
!include "MUI2.nsh"
!include "LogicLib.nsh"

!ifndef VERSION
  !error "pass -DVERSION=..."
!endif
!ifndef STAGE
  !error "pass -DSTAGE=<directory holding the files to install>"
!endif
!ifndef OUTFILE
  !define OUTFILE "cairn-${VERSION}-windows-x86_64-setup.exe"
!endif

!define UNINSTALL_KEY "Software\Microsoft\Windows\CurrentVersion\Uninstall\cairn"

Name "cairn ${VERSION}"
OutFile "${OUTFILE}"
InstallDir "$PROGRAMFILES64\cairn"
InstallDirRegKey HKLM "Software\cairn" "InstallDir"
RequestExecutionLevel admin
SetCompressor /SOLID lzma

!insertmacro MUI_PAGE_LICENSE "${STAGE}\README.txt"
!insertmacro MUI_PAGE_COMPONENTS
!insertmacro MUI_PAGE_DIRECTORY
!insertmacro MUI_PAGE_INSTFILES
!insertmacro MUI_UNPAGE_CONFIRM
!insertmacro MUI_UNPAGE_INSTFILES
!insertmacro MUI_LANGUAGE "English"

Function .onInit
  SetRegView 64
FunctionEnd

Function un.onInit
  SetRegView 64
FunctionEnd

Section "cairn (required)" SecMain
  SectionIn RO
  SetOutPath "$INSTDIR"
  File "${STAGE}\cairn.exe"
  File "${STAGE}\README.txt"
  WriteUninstaller "$INSTDIR\uninstall.exe"
  WriteRegStr HKLM "Software\cairn" "InstallDir" "$INSTDIR"
  WriteRegStr HKLM "${UNINSTALL_KEY}" "DisplayName" "cairn ${VERSION}"
  WriteRegStr HKLM "${UNINSTALL_KEY}" "DisplayVersion" "${VERSION}"
  WriteRegStr HKLM "${UNINSTALL_KEY}" "Publisher" "cairn"
  WriteRegStr HKLM "${UNINSTALL_KEY}" "InstallLocation" "$INSTDIR"
  WriteRegStr HKLM "${UNINSTALL_KEY}" "UninstallString" '"$INSTDIR\uninstall.exe"'
  WriteRegDWORD HKLM "${UNINSTALL_KEY}" "NoModify" 1
  WriteRegDWORD HKLM "${UNINSTALL_KEY}" "NoRepair" 1
  CreateDirectory "$SMPROGRAMS\cairn"
  CreateShortcut "$SMPROGRAMS\cairn\cairn command prompt.lnk" "$SYSDIR\cmd.exe" '/k cd /d "$INSTDIR"'
  CreateShortcut "$SMPROGRAMS\cairn\Uninstall cairn.lnk" "$INSTDIR\uninstall.exe"
SectionEnd

; Off by default: a service runs 'cairn run' at every boot as LocalSystem.
Section /o "Run cairn as a Windows service" SecService
  nsExec::ExecToLog '"$INSTDIR\cairn.exe" service install'
  Pop $0
  ${If} $0 != 0
    MessageBox MB_OK|MB_ICONEXCLAMATION "Registering the cairn service failed (exit code $0)."
  ${EndIf}
SectionEnd

Section "Uninstall"
  ; Removes the service if one was registered; fails harmlessly otherwise.
  nsExec::ExecToLog '"$INSTDIR\cairn.exe" service uninstall'
  Pop $0
  Delete "$INSTDIR\cairn.exe"
  Delete "$INSTDIR\README.txt"
  Delete "$INSTDIR\uninstall.exe"
  RMDir "$INSTDIR"
  Delete "$SMPROGRAMS\cairn\cairn command prompt.lnk"
  Delete "$SMPROGRAMS\cairn\Uninstall cairn.lnk"
  RMDir "$SMPROGRAMS\cairn"
  DeleteRegKey HKLM "${UNINSTALL_KEY}"
  DeleteRegKey HKLM "Software\cairn"
SectionEnd
